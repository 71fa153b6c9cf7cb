package main

import (
	"bytes"
	"crypto/sha256"
	"encoding/gob"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"os/signal"
	"path/filepath"
	"reflect"
	"strings"
	"syscall"

	"github.com/brecq-go/brecq/brecq"
	"github.com/brecq-go/brecq/internal/atomicfile"
)

// runIdentity is what a saved run state is only valid for: the same
// checkpoint bytes, network, data, calibration images and options.
type runIdentity struct {
	CheckpointSHA256 string        `json:"checkpoint_sha256"`
	Model            string        `json:"model"`
	Data             string        `json:"data"`
	ImageSize        int           `json:"image_size"`
	CalibIndices     []int         `json:"calib_indices"`
	Options          brecq.Options `json:"options"`
}

// stateFile and identityFile are the two files of a state folder.
const (
	stateFile    = "state.gob"
	identityFile = "run.json"
)

// stateDir is the folder --state names, or by default the first of
// --out / --json with ".state" for its extension ("" when neither is set:
// nothing is saved).
func (f *quantFlags) stateDir() string {
	if *f.resume != "" {
		return *f.resume
	}
	if *f.state != "" {
		return *f.state
	}
	for _, p := range []string{*f.out, *f.jsonOut} {
		if p != "" {
			return trimExt(p) + ".state"
		}
	}
	return ""
}

// fileSHA256 is the hex SHA-256 of a file's bytes.
func fileSHA256(path string) (string, error) {
	fh, err := os.Open(path)
	if err != nil {
		return "", err
	}
	defer fh.Close()
	h := sha256.New()
	if _, err := io.Copy(h, fh); err != nil {
		return "", fmt.Errorf("%s: %w", path, err)
	}
	return hex.EncodeToString(h.Sum(nil)), nil
}

// identity describes this run for its state folder.
func (f *quantFlags) identity(e *quantEnv, opt brecq.Options) (runIdentity, error) {
	sum, err := fileSHA256(*f.model)
	if err != nil {
		return runIdentity{}, err
	}
	opt.Progress = nil
	return runIdentity{CheckpointSHA256: sum, Model: e.net.Name, Data: e.ds.Name, ImageSize: e.ds.H,
		CalibIndices: e.idx, Options: opt}, nil
}

// differingField names the first field (by its JSON name, options by
// theirs) in which a and b differ, or "".
func differingField(a, b runIdentity) string {
	ja, _ := json.Marshal(a)
	jb, _ := json.Marshal(b)
	var ma, mb map[string]any
	_ = json.Unmarshal(ja, &ma)
	_ = json.Unmarshal(jb, &mb)
	for _, k := range []string{"checkpoint_sha256", "model", "data", "image_size", "calib_indices"} {
		if !reflect.DeepEqual(ma[k], mb[k]) {
			return k
		}
	}
	oa, _ := ma["options"].(map[string]any)
	ob, _ := mb["options"].(map[string]any)
	for k := range oa {
		if !reflect.DeepEqual(oa[k], ob[k]) {
			return "options." + k
		}
	}
	for k := range ob {
		if _, ok := oa[k]; !ok {
			return "options." + k
		}
	}
	return ""
}

// prepareState sets q up to save its state after every finished unit in
// the state folder, and with --resume first loads the state saved there,
// refusing one made by another run (naming the differing field). It
// returns the folder ("" when nothing is saved) and a function that stops
// the interrupt handler.
func (f *quantFlags) prepareState(e *quantEnv, q *brecq.Quantizer, args []string) (string, func(), error) {
	dir := f.stateDir()
	if dir == "" {
		return "", func() {}, nil
	}
	id, err := f.identity(e, q.Options())
	if err != nil {
		return "", nil, err
	}
	if *f.resume != "" {
		raw, err := os.ReadFile(filepath.Join(dir, identityFile))
		if err != nil {
			return "", nil, fmt.Errorf("--resume %s: no saved run there: %w", dir, err)
		}
		var saved runIdentity
		if err := json.Unmarshal(raw, &saved); err != nil {
			return "", nil, fmt.Errorf("--resume %s: %s is not a run identity: %w", dir, identityFile, err)
		}
		if k := differingField(saved, id); k != "" {
			return "", nil, fmt.Errorf("--resume %s: the saved run differs from this one in %s: resume with the flags, checkpoint and data it was started with", dir, k)
		}
		raw, err = os.ReadFile(filepath.Join(dir, stateFile))
		if err != nil {
			return "", nil, fmt.Errorf("--resume %s: %w", dir, err)
		}
		var s brecq.RunState
		if err := gob.NewDecoder(bytes.NewReader(raw)).Decode(&s); err != nil {
			return "", nil, fmt.Errorf("--resume %s: %s is damaged: %w", dir, stateFile, err)
		}
		if err := q.Resume(&s); err != nil {
			return "", nil, fmt.Errorf("--resume %s: %w", dir, err)
		}
		fmt.Printf("resuming from %s: %d weight unit(s) and %d activation step(s) done\n", dir, s.WeightUnits, s.ActSteps)
	} else {
		if err := os.MkdirAll(dir, 0o755); err != nil {
			return "", nil, fmt.Errorf("--state %s: %w", dir, err)
		}
		if err := atomicfile.WriteJSON(filepath.Join(dir, identityFile), id); err != nil {
			return "", nil, fmt.Errorf("--state %s: %w", dir, err)
		}
	}
	q.OnUnit = func(s *brecq.RunState) error {
		var b bytes.Buffer
		if err := gob.NewEncoder(&b).Encode(s); err != nil {
			return err
		}
		return atomicfile.WriteFile(filepath.Join(dir, stateFile), b.Bytes())
	}
	resumeCmd := "brecq " + strings.Join(withResume(args, dir), " ")
	fmt.Printf("state after each unit: %s (if interrupted: %s)\n", dir, resumeCmd)
	sig := make(chan os.Signal, 1)
	signal.Notify(sig, os.Interrupt, syscall.SIGTERM)
	stop := make(chan struct{})
	go func() {
		select {
		case s := <-sig:
			fmt.Fprintf(os.Stderr, "\n%v: stopped; the finished units are saved in %s; continue with:\n  %s\n", s, dir, resumeCmd)
			os.Exit(130)
		case <-stop:
		}
	}()
	return dir, func() { signal.Stop(sig); close(stop) }, nil
}

// withResume is args with --resume dir (replacing --resume / --state).
func withResume(args []string, dir string) []string {
	var out []string
	for i := 0; i < len(args); i++ {
		a := args[i]
		name := strings.TrimLeft(a, "-")
		if name == "resume" || name == "state" {
			i++
			continue
		}
		if strings.HasPrefix(name, "resume=") || strings.HasPrefix(name, "state=") {
			continue
		}
		out = append(out, a)
	}
	return append(out, "--resume", dir)
}
