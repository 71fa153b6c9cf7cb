package datasets

import (
	"errors"
	"fmt"
	"io/fs"
	"math"
	"os"
	"path/filepath"
	"slices"
	"strings"
)

// ImageExtensions are the file name endings (compared case-insensitively)
// that an image folder lists, torchvision's IMG_EXTENSIONS. The content, not
// the name, decides the decoder (as in PIL): PNG, JPEG and GIF decode; other
// formats (BMP, TIFF, WebP, PPM/PGM) are listed, so that indices and labels
// agree with torchvision's ImageFolder, but give an error naming the file
// when loaded.
var ImageExtensions = []string{".jpg", ".jpeg", ".png", ".ppm", ".bmp", ".pgm", ".tif", ".tiff", ".webp"}

// DefaultImageSize is the side of the square network input of folder data
// sets when none is given.
const DefaultImageSize = 224

// ResizeFor returns the shorter-side size of the evaluation transform for
// an input of imageSize pixels: round(imageSize·256/224), which is 256 for 224
// (the standard ImageNet Resize(256) + CenterCrop(224)).
func ResizeFor(imageSize int) int {
	return int(math.Round(float64(imageSize) * 256 / 224))
}

// FolderImages is one split (train or val) of an image folder in ImageNet
// layout, DIR/<class>/<files>, served as Images with the standard evaluation
// transform: decode (DecodeRGB), resize the shorter side to Resize with PIL's
// antialiased bilinear filter (ResizeShorter, resizeCrop), centre-crop
// Size×Size (CenterOffset), scale to [0, 1] and normalise per channel with
// Norm — torchvision's
//
//	Compose([Resize(Resize), CenterCrop(Size), ToTensor(), Normalize(mean, std)])
//
// on ImageFolder's PIL loader. Files are decoded when loaded, never held.
type FolderImages struct {
	// Dir is the split's folder.
	Dir string
	// Classes are the class folder names, sorted; label l is Classes[l].
	Classes []string
	// Files are the image paths in ImageFolder order; Labels their classes.
	Files  []string
	Labels []int
	// Size is the side of the square output; Resize the shorter side before
	// cropping.
	Size, Resize int
	// Norm is the per-channel normalisation (ImageNetNorm by default).
	Norm ChannelNorm
}

// ListFolder lists an ImageFolder split: the class folders of dir sorted by
// name, and in each (following symbolic links, recursively) the files whose
// names end in one of ImageExtensions, ordered as torchvision's
// make_dataset does — folders by their path, files by name within a folder.
// A missing dir, a dir without class folders, or a class folder without
// images is an error naming it.
func ListFolder(dir string) (classes, files []string, labels []int, err error) {
	st, err := os.Stat(dir)
	if err != nil {
		return nil, nil, nil, fmt.Errorf("datasets: image folder: %w", err)
	}
	if !st.IsDir() {
		return nil, nil, nil, fmt.Errorf("datasets: image folder %s is not a directory", dir)
	}
	entries, err := os.ReadDir(dir)
	if err != nil {
		return nil, nil, nil, fmt.Errorf("datasets: image folder: %w", err)
	}
	for _, e := range entries {
		if isDir(filepath.Join(dir, e.Name()), e) {
			classes = append(classes, e.Name())
		}
	}
	if len(classes) == 0 {
		return nil, nil, nil, fmt.Errorf("datasets: image folder %s has no class folders (want %s/<class>/<images>)", dir, dir)
	}
	slices.Sort(classes)
	var empty []string
	for label, class := range classes {
		var roots []string
		if err := walkDirs(filepath.Join(dir, class), map[string]bool{}, &roots); err != nil {
			return nil, nil, nil, err
		}
		slices.Sort(roots)
		count := 0
		for _, root := range roots {
			names, err := fileNames(root)
			if err != nil {
				return nil, nil, nil, err
			}
			for _, name := range names {
				if hasImageExtension(name) {
					files = append(files, root+"/"+name)
					labels = append(labels, label)
					count++
				}
			}
		}
		if count == 0 {
			empty = append(empty, class)
		}
	}
	if len(empty) > 0 {
		return nil, nil, nil, fmt.Errorf("datasets: image folder %s: no image files (%s) in the class folders %s",
			dir, strings.Join(ImageExtensions, " "), strings.Join(empty, ", "))
	}
	return classes, files, labels, nil
}

// isDir reports whether the entry is a directory, following a symbolic link.
func isDir(path string, e fs.DirEntry) bool {
	if e.IsDir() {
		return true
	}
	if e.Type()&fs.ModeSymlink != 0 {
		st, err := os.Stat(path)
		return err == nil && st.IsDir()
	}
	return false
}

// walkDirs appends dir and every folder below it (following symbolic links,
// each real folder once) to roots, as os.walk(followlinks=True) visits them.
func walkDirs(dir string, seen map[string]bool, roots *[]string) error {
	real, err := filepath.EvalSymlinks(dir)
	if err != nil {
		return fmt.Errorf("datasets: image folder: %w", err)
	}
	if seen[real] {
		return nil
	}
	seen[real] = true
	*roots = append(*roots, dir)
	entries, err := os.ReadDir(dir)
	if err != nil {
		return fmt.Errorf("datasets: image folder: %w", err)
	}
	for _, e := range entries {
		p := dir + "/" + e.Name()
		if isDir(p, e) {
			if err := walkDirs(p, seen, roots); err != nil {
				return err
			}
		}
	}
	return nil
}

// fileNames returns the sorted names of the non-folder entries of dir.
func fileNames(dir string) ([]string, error) {
	entries, err := os.ReadDir(dir)
	if err != nil {
		return nil, fmt.Errorf("datasets: image folder: %w", err)
	}
	var names []string
	for _, e := range entries {
		if !isDir(dir+"/"+e.Name(), e) {
			names = append(names, e.Name())
		}
	}
	slices.Sort(names)
	return names, nil
}

// hasImageExtension reports whether name ends in one of ImageExtensions,
// ignoring case.
func hasImageExtension(name string) bool {
	lower := strings.ToLower(name)
	for _, ext := range ImageExtensions {
		if strings.HasSuffix(lower, ext) {
			return true
		}
	}
	return false
}

// NewFolderImages lists dir (ListFolder) and returns its images with the
// evaluation transform to size×size (size ≤ 0: DefaultImageSize), the shorter
// side first resized to resize (≤ 0: ResizeFor(size)), normalised by norm
// (nil Mean: ImageNetNorm).
func NewFolderImages(dir string, size, resize int, norm ChannelNorm) (*FolderImages, error) {
	if size <= 0 {
		size = DefaultImageSize
	}
	if resize <= 0 {
		resize = ResizeFor(size)
	}
	if norm.Mean == nil {
		norm = ImageNetNorm
	}
	if err := norm.check(3); err != nil {
		return nil, err
	}
	classes, files, labels, err := ListFolder(dir)
	if err != nil {
		return nil, err
	}
	return &FolderImages{Dir: dir, Classes: classes, Files: files, Labels: labels, Size: size, Resize: resize, Norm: norm}, nil
}

// Len implements Images.
func (f *FolderImages) Len() int { return len(f.Files) }

// Shape implements Images: 3×Size×Size.
func (f *FolderImages) Shape() (c, h, w int) { return 3, f.Size, f.Size }

// Label implements Images.
func (f *FolderImages) Label(i int) int { return f.Labels[i] }

// Load implements Images: it decodes file i and applies the evaluation
// transform (see FolderImages). Errors name the file.
func (f *FolderImages) Load(i int, dst []float32) error {
	if i < 0 || i >= len(f.Files) {
		return fmt.Errorf("datasets: index %d outside 0..%d", i, len(f.Files)-1)
	}
	pix, err := f.Pixels(i)
	if err != nil {
		return err
	}
	return f.normalize(pix, dst)
}

// Pixels returns image i after the resize and centre crop, before
// normalisation: Size×Size interleaved RGB bytes, row-major.
func (f *FolderImages) Pixels(i int) ([]uint8, error) {
	if i < 0 || i >= len(f.Files) {
		return nil, fmt.Errorf("datasets: index %d outside 0..%d", i, len(f.Files)-1)
	}
	path := f.Files[i]
	src, h, w, err := DecodeRGB(path)
	if err != nil {
		return nil, err
	}
	oh, ow := ResizeShorter(h, w, f.Resize)
	if oh <= 0 || ow <= 0 || int64(oh)*int64(ow) > maxImagePixels {
		return nil, fmt.Errorf("datasets: %s: a %dx%d image cannot be resized to shorter side %d", path, w, h, f.Resize)
	}
	return resizeCrop(src, h, w, 3, oh, ow, CenterOffset(oh, f.Size), CenterOffset(ow, f.Size), f.Size, f.Size)
}

// normalize writes the interleaved RGB pixels as normalised CHW float32.
func (f *FolderImages) normalize(pix []uint8, dst []float32) error {
	hw := f.Size * f.Size
	if len(dst) != 3*hw {
		return fmt.Errorf("datasets: Load into %d values, want %d", len(dst), 3*hw)
	}
	var lut [3][256]float32
	for c := range 3 {
		for p := range 256 {
			lut[c][p] = f.Norm.Value(c, uint8(p))
		}
	}
	for j := range hw {
		dst[j] = lut[0][pix[3*j]]
		dst[hw+j] = lut[1][pix[3*j+1]]
		dst[2*hw+j] = lut[2][pix[3*j+2]]
	}
	return nil
}

// Folder is an image folder data set in ImageNet layout: DIR/train/<class>/*
// and DIR/val/<class>/*, with the same classes in both.
type Folder struct {
	Dir        string
	Classes    []string
	Train, Val *FolderImages
}

// OpenFolder opens DIR/train and DIR/val (see NewFolderImages). Both must
// exist and hold the same class folders.
func OpenFolder(dir string, size, resize int, norm ChannelNorm) (*Folder, error) {
	if st, err := os.Stat(dir); err != nil {
		return nil, fmt.Errorf("datasets: image folder: %w", err)
	} else if !st.IsDir() {
		return nil, fmt.Errorf("datasets: image folder %s is not a directory", dir)
	}
	var splits [2]*FolderImages
	for k, name := range []string{"train", "val"} {
		p := filepath.Join(dir, name)
		if _, err := os.Stat(p); errors.Is(err, fs.ErrNotExist) {
			return nil, fmt.Errorf("datasets: image folder %s has no %s/ folder (want %s/train/<class>/<images> and %s/val/<class>/<images>)",
				dir, name, dir, dir)
		}
		s, err := NewFolderImages(p, size, resize, norm)
		if err != nil {
			return nil, err
		}
		splits[k] = s
	}
	if !slices.Equal(splits[0].Classes, splits[1].Classes) {
		return nil, fmt.Errorf("datasets: image folder %s: train/ and val/ have different classes (%s)",
			dir, classDiff(splits[0].Classes, splits[1].Classes))
	}
	return &Folder{Dir: dir, Classes: splits[0].Classes, Train: splits[0], Val: splits[1]}, nil
}

// classDiff describes how two sorted class lists differ.
func classDiff(train, val []string) string {
	var onlyT, onlyV []string
	for _, c := range train {
		if !slices.Contains(val, c) {
			onlyT = append(onlyT, c)
		}
	}
	for _, c := range val {
		if !slices.Contains(train, c) {
			onlyV = append(onlyV, c)
		}
	}
	clip := func(s []string) string {
		if len(s) > 5 {
			return strings.Join(s[:5], ", ") + fmt.Sprintf(" and %d more", len(s)-5)
		}
		return strings.Join(s, ", ")
	}
	var parts []string
	if len(onlyT) > 0 {
		parts = append(parts, "only in train: "+clip(onlyT))
	}
	if len(onlyV) > 0 {
		parts = append(parts, "only in val: "+clip(onlyV))
	}
	return strings.Join(parts, "; ")
}
