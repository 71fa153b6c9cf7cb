// Package brecq is post-training quantization of CNNs by block
// reconstruction: BRECQ (Li et al., ICLR 2021) and AdaRound (Nagel et al.,
// ICML 2020), with QDrop (Wei et al., ICLR 2022) as a variant, on GoMLX.
//
// A Quantizer takes a network (package models), its FP parameters and
// calibration images; NewQuantizer folds BatchNorm and initialises every
// weight quantizer, Run reconstructs the weights unit by unit (learned
// rounding) and then learns the activation step sizes, and Evaluator runs
// the result:
//
//	q, err := brecq.NewQuantizer(backend, net, params, calibImages, brecq.DefaultOptions(2, 4))
//	err = q.Run()
//	logits, done := q.Evaluator(q.EvalMode())
//
// One paper concept per file:
//
//	quantizer.go    uniform affine fake quantization, QParams, host reference
//	rangesearch.go  L_p range search initialising weight and activation ranges
//	fold.go         BatchNorm folding
//	adaround.go     learned rounding h(V), β schedule, rounding regulariser
//	adam.go         Adam update (shared by both stages)
//	loss.go         the reconstruction loss LpLoss (MSE, Fisher-weighted, L_p)
//	qnet.go         QNet, the quantized view of a network; typed graph-input keys
//	modes.go        Mode: how a graph rounds weights and quantizes activations —
//	                every mode the run builds (weight, prefix, unit, activation, eval)
//	units.go        reconstruction units: layer, block, stage, net
//	options.go      Method, Loss, Options, DefaultOptions, AdaRoundOptions, Validate
//	recon.go        Quantizer: NewQuantizer and Run
//	stream.go       calibration streams: caching a unit's input, output, Fisher g², in passes sized by bytes
//	cache.go        per-image caches under one memory budget, on disk past it
//	step.go         step graphs: named input slots, Adam groups, the optimisation loop
//	                (Options.OnIter sees every iteration)
//	weightstage.go  the weight stage (AdaRound / BRECQ / QDrop) of one unit
//	actstage.go     activation ranges and LSQ step sizes, unit by unit
//	evaluator.go    batched evaluation of a QNet under a mode
//	report.go       per-unit run reports, the per-iteration trace (IterStats), iteration timing
//	convergence.go  h(V) decided and each unit's loss over its whole calibration cache
//	sensitivity.go  mixed precision: Fisher-weighted block sensitivities
//	resume.go       RunState: the run's state after each unit, and Resume
//	export.go       integer codes and the quantized safetensors export
//	errors.go       the package's error prefix
//
// Subpackages: mixed (bit-width search over measured sensitivities: genetic
// and exhaustive), optim (cosine learning rate and cross-entropy, shared with
// FP training), fptrain (FP training and evaluation), models (networks as
// data), nn (the convolution), engine (backend choice), onnx (ONNX QDQ
// export), intref (integer-only reference forward), safetensors and
// runrecord.
//
// Errors returned by the package start with "brecq: " and name the option,
// layer, unit or file concerned.
package brecq
