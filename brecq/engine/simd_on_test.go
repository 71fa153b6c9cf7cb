//go:build goexperiment.simd

package engine_test

// builtWithSIMD is set by the compiler's build tags: the truth that
// BuildExperiments (which reads runtime/debug) must agree with.
const builtWithSIMD = true
