package onnx

import (
	"bytes"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
)

// ErrNoORT is wrapped by FindORT's error when node or the onnxruntime-node
// package is not installed.
var ErrNoORT = errors.New("ONNX Runtime (node + onnxruntime-node) not installed")

// EnvORTDir overrides where FindORT looks for run.js and its node_modules.
const EnvORTDir = "BRECQ_ORT_DIR"

// ORT runs ONNX models in ONNX Runtime through scripts/ort/run.js
// (onnxruntime-node, CPU execution provider).
type ORT struct {
	Node   string // the node executable
	Script string // run.js
}

// FindORT locates node and scripts/ort/run.js with its installed
// onnxruntime-node: $BRECQ_ORT_DIR, else scripts/ort in the enclosing
// module (searched upwards from the working directory). The error wraps
// ErrNoORT and says how to install.
func FindORT() (*ORT, error) {
	node, err := exec.LookPath("node")
	if err != nil {
		return nil, fmt.Errorf("%w: no node on PATH (apt-get install nodejs npm)", ErrNoORT)
	}
	dir := os.Getenv(EnvORTDir)
	if dir == "" {
		wd, err := os.Getwd()
		if err != nil {
			return nil, err
		}
		for d := wd; ; d = filepath.Dir(d) {
			if _, err := os.Stat(filepath.Join(d, "go.mod")); err == nil {
				dir = filepath.Join(d, "scripts", "ort")
				break
			}
			if filepath.Dir(d) == d {
				return nil, fmt.Errorf("%w: no go.mod above %s; set %s to the folder of run.js", ErrNoORT, wd, EnvORTDir)
			}
		}
	}
	script := filepath.Join(dir, "run.js")
	if _, err := os.Stat(script); err != nil {
		return nil, fmt.Errorf("%w: %v", ErrNoORT, err)
	}
	if _, err := os.Stat(filepath.Join(dir, "node_modules", "onnxruntime-node", "package.json")); err != nil {
		return nil, fmt.Errorf("%w: onnxruntime-node is not installed in %s (run: cd %s && npm ci --ignore-scripts, or bash scripts/setup.sh)", ErrNoORT, dir, dir)
	}
	return &ORT{Node: node, Script: script}, nil
}

// RunOptions are run.js's knobs.
type RunOptions struct {
	Batch   int // images per session.run (default 256)
	Threads int // intra-op threads (0: ORT's default)
	Repeat  int // timed passes over the inputs (default 1)
	// Optimization is ORT's graph optimisation level: disabled, basic,
	// extended or all (default all).
	Optimization string
	// Config are session configuration entries (SessionOptions.extra), e.g.
	// "session.disable_quant_qdq": "1".
	Config map[string]string
}

// RunStats is run.js's report.
type RunStats struct {
	ORTVersion   string  `json:"ort_version"`
	OutputDims   []int   `json:"output_dims"`
	Images       int     `json:"images"`
	Batch        int     `json:"batch"`
	Threads      int     `json:"threads"`
	Optimization string  `json:"optimization"`
	Seconds      float64 `json:"seconds"`
	ImagesPerSec float64 `json:"images_per_second"`
}

// Run feeds x (n images of shape dims[1:], NCHW float32) to the model file
// in ONNX Runtime and returns its first output, [n, k] row-major, with k.
func (o *ORT) Run(model string, x []float32, dims []int, opt RunOptions) (out []float32, k int, st RunStats, err error) {
	if len(dims) < 2 {
		return nil, 0, st, fmt.Errorf("onnx: ORT run of %s: input dims %v need a batch axis", model, dims)
	}
	n := 1
	for _, d := range dims {
		n *= d
	}
	if n != len(x) {
		return nil, 0, st, fmt.Errorf("onnx: ORT run of %s: %d inputs for dims %v", model, len(x), dims)
	}
	tmp, err := os.MkdirTemp("", "brecq-ort-")
	if err != nil {
		return nil, 0, st, err
	}
	defer os.RemoveAll(tmp)
	in, outPath := filepath.Join(tmp, "input.f32"), filepath.Join(tmp, "output.f32")
	raw := make([]byte, 4*len(x))
	for i, v := range x {
		binary.LittleEndian.PutUint32(raw[4*i:], math.Float32bits(v))
	}
	if err := os.WriteFile(in, raw, 0o600); err != nil {
		return nil, 0, st, err
	}
	shape := make([]string, len(dims))
	for i, d := range dims {
		shape[i] = strconv.Itoa(d)
	}
	args := []string{o.Script, "--model", model, "--input", in, "--output", outPath, "--shape", strings.Join(shape, ",")}
	if opt.Batch > 0 {
		args = append(args, "--batch", strconv.Itoa(opt.Batch))
	}
	if opt.Threads > 0 {
		args = append(args, "--threads", strconv.Itoa(opt.Threads))
	}
	if opt.Repeat > 0 {
		args = append(args, "--repeat", strconv.Itoa(opt.Repeat))
	}
	if opt.Optimization != "" {
		args = append(args, "--opt", opt.Optimization)
	}
	for _, k := range sortedKeys(opt.Config) {
		args = append(args, "--config", k+"="+opt.Config[k])
	}
	cmd := exec.Command(o.Node, args...)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		return nil, 0, st, fmt.Errorf("onnx: ONNX Runtime on %s: %v\n%s", model, err, strings.TrimSpace(stderr.String()))
	}
	if err := json.Unmarshal(stdout.Bytes(), &st); err != nil {
		return nil, 0, st, fmt.Errorf("onnx: ONNX Runtime on %s: bad report %q: %v", model, stdout.String(), err)
	}
	b, err := os.ReadFile(outPath)
	if err != nil {
		return nil, 0, st, err
	}
	if len(st.OutputDims) != 2 || st.OutputDims[0] != dims[0] || len(b) != 4*st.OutputDims[0]*st.OutputDims[1] {
		return nil, 0, st, fmt.Errorf("onnx: ONNX Runtime on %s: output dims %v, %d bytes", model, st.OutputDims, len(b))
	}
	out = make([]float32, len(b)/4)
	for i := range out {
		out[i] = math.Float32frombits(binary.LittleEndian.Uint32(b[4*i:]))
	}
	return out, st.OutputDims[1], st, nil
}
