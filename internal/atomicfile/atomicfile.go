// Package atomicfile writes files atomically: the data goes to a temporary
// file in the target's folder, which is synced and renamed over the target,
// so a reader (or a crash) never sees a half-written file. An existing
// file's permission bits are kept, and a symbolic link is written through
// (its target is replaced, the link stays). A [Batch] stages several files
// and renames them all at the end.
//
// It holds no file format: brecq/runrecord is the schema of the run records
// written through it.
package atomicfile

import (
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
)

// DefaultMode is the permission of a new file.
const DefaultMode fs.FileMode = 0o644

// maxLinks bounds the symbolic links followed by [Target].
const maxLinks = 40

// Target resolves path through symbolic links (also dangling ones: the file
// a link names need not exist yet) and returns the path a write must
// replace, with the permission bits to give it: the existing file's, or
// [DefaultMode] for a new file. It fails if the target is a directory or
// not a regular file.
func Target(path string) (string, fs.FileMode, error) {
	p := path
	for range maxLinks {
		st, err := os.Lstat(p)
		if errors.Is(err, fs.ErrNotExist) {
			return p, DefaultMode, nil
		}
		if err != nil {
			return "", 0, err
		}
		switch {
		case st.Mode()&fs.ModeSymlink != 0:
			dest, err := os.Readlink(p)
			if err != nil {
				return "", 0, err
			}
			if !filepath.IsAbs(dest) {
				dest = filepath.Join(filepath.Dir(p), dest)
			}
			p = dest
		case st.IsDir():
			return "", 0, fmt.Errorf("%s is a directory, not a file", path)
		case !st.Mode().IsRegular():
			return "", 0, fmt.Errorf("%s is not a regular file (%s)", path, st.Mode().Type())
		default:
			return p, st.Mode().Perm(), nil
		}
	}
	return "", 0, fmt.Errorf("%s: more than %d symbolic links", path, maxLinks)
}

// CheckWritable reports whether a file can be written at path: its folder
// exists and accepts new files (tried with a temporary file, removed at
// once), and path is not a directory or another kind of non-regular file.
func CheckWritable(path string) error {
	if path == "" {
		return errors.New("empty path")
	}
	target, _, err := Target(path)
	if err != nil {
		return err
	}
	dir := filepath.Dir(target)
	st, err := os.Stat(dir)
	if err != nil {
		return fmt.Errorf("%s: folder %s: %w", path, dir, unwrapPath(err))
	}
	if !st.IsDir() {
		return fmt.Errorf("%s: %s is not a folder", path, dir)
	}
	f, err := os.CreateTemp(dir, "."+filepath.Base(target)+".check*")
	if err != nil {
		return fmt.Errorf("%s: folder %s is not writable: %w", path, dir, unwrapPath(err))
	}
	name := f.Name()
	f.Close()
	return os.Remove(name)
}

// unwrapPath drops the *fs.PathError wrapper (whose path is already named).
func unwrapPath(err error) error {
	var pe *fs.PathError
	if errors.As(err, &pe) {
		return pe.Err
	}
	return err
}

// WriteJSON writes v as indented JSON with a final newline to path,
// atomically (see [WriteFile]). A value JSON cannot encode fails before
// anything is written.
func WriteJSON(path string, v any) error {
	data, err := MarshalJSON(v)
	if err != nil {
		return fmt.Errorf("writing %s: %w", path, err)
	}
	return WriteFile(path, data)
}

// MarshalJSON is v as indented JSON with a final newline, as [WriteJSON]
// writes it.
func MarshalJSON(v any) ([]byte, error) {
	data, err := json.MarshalIndent(v, "", "  ")
	if err != nil {
		return nil, err
	}
	return append(data, '\n'), nil
}

// WriteFile writes data to path atomically: a temporary file in the
// target's folder, synced, given the target's permission bits (see
// [Target]) and renamed over the target. On error nothing is left behind
// and an existing file is untouched.
func WriteFile(path string, data []byte) error {
	var b Batch
	if err := b.AddBytes(path, data); err != nil {
		return err
	}
	return b.Commit()
}

// Batch stages files and puts them in place together with [Batch.Commit];
// [Batch.Discard] removes whatever is staged. The zero value is ready.
type Batch struct {
	staged []staged
}

type staged struct {
	path, target, tmp string
	mode              fs.FileMode
}

// Add stages a file for path, written by write to the temporary path it
// is given (in the target's folder; write may itself replace that path by
// rename). If write fails, the temporary file is removed and the error
// returned.
func (b *Batch) Add(path string, write func(tmp string) error) error {
	target, mode, err := Target(path)
	if err != nil {
		return fmt.Errorf("writing %s: %w", path, err)
	}
	f, err := os.CreateTemp(filepath.Dir(target), "."+filepath.Base(target)+".tmp*")
	if err != nil {
		return fmt.Errorf("writing %s: %w", path, err)
	}
	tmp := f.Name()
	f.Close()
	if err := write(tmp); err != nil {
		os.Remove(tmp)
		return fmt.Errorf("writing %s: %w", path, err)
	}
	b.staged = append(b.staged, staged{path: path, target: target, tmp: tmp, mode: mode})
	return nil
}

// AddBytes stages data as the content of path.
func (b *Batch) AddBytes(path string, data []byte) error {
	return b.Add(path, func(tmp string) error {
		f, err := os.OpenFile(tmp, os.O_WRONLY|os.O_TRUNC, 0)
		if err != nil {
			return err
		}
		if _, err := f.Write(data); err != nil {
			f.Close()
			return err
		}
		if err := f.Sync(); err != nil {
			f.Close()
			return err
		}
		return f.Close()
	})
}

// AddJSON stages v as indented JSON (see [WriteJSON]) for path.
func (b *Batch) AddJSON(path string, v any) error {
	data, err := MarshalJSON(v)
	if err != nil {
		return fmt.Errorf("writing %s: %w", path, err)
	}
	return b.AddBytes(path, data)
}

// Commit gives every staged file its target's permission bits, then renames
// them into place in the order they were added. If preparing any fails,
// nothing is renamed and everything is removed. The batch is empty
// afterwards.
func (b *Batch) Commit() error {
	defer b.Discard()
	for _, s := range b.staged {
		if err := os.Chmod(s.tmp, s.mode); err != nil {
			return fmt.Errorf("writing %s: %w", s.path, err)
		}
	}
	for i, s := range b.staged {
		if err := os.Rename(s.tmp, s.target); err != nil {
			return fmt.Errorf("writing %s: %w", s.path, err)
		}
		b.staged[i].tmp = ""
		syncDir(filepath.Dir(s.target))
	}
	return nil
}

// Discard removes every staged temporary file.
func (b *Batch) Discard() {
	for _, s := range b.staged {
		if s.tmp != "" {
			os.Remove(s.tmp)
		}
	}
	b.staged = nil
}

// syncDir makes a rename durable; best effort, the file is already in place.
func syncDir(dir string) {
	if d, err := os.Open(dir); err == nil {
		d.Sync()
		d.Close()
	}
}
