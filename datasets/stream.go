package datasets

import (
	"fmt"
	"runtime"
	"sync"
)

// LoadOptions configures parallel loading of Images.
type LoadOptions struct {
	// Workers is the number of goroutines that load (decode) images;
	// ≤ 0 means runtime.GOMAXPROCS(0).
	Workers int
	// Prefetch is the number of batches loaded ahead of the consumer; ≤ 0
	// means 2. At most Prefetch + 2 batches are held in memory at once.
	Prefetch int
	// Progress, when non-nil, is called from the consumer's goroutine (inside
	// Stream.Next) after each batch is delivered, with the number of images
	// delivered so far and the total — where a progress bar attaches.
	Progress func(done, total int)
}

func (o LoadOptions) workers() int {
	if o.Workers > 0 {
		return o.Workers
	}
	return runtime.GOMAXPROCS(0)
}

// Batch is one batch of a Stream: X holds len(Indices) images in NCHW order
// (image b is X[b*c*h*w : (b+1)*c*h*w]), Y their labels.
type Batch struct {
	X       []float32
	Y       []int32
	Indices []int
}

// pending is a batch being loaded.
type pending struct {
	batch Batch
	left  sync.WaitGroup
	mu    sync.Mutex
	err   error // the error of the lowest failing position
	errAt int
}

func (p *pending) fail(pos int, err error) {
	p.mu.Lock()
	if p.err == nil || pos < p.errAt {
		p.err, p.errAt = err, pos
	}
	p.mu.Unlock()
}

type job struct {
	p   *pending
	pos int
}

// Stream serves the images of an Images collection at given indices in
// consecutive batches of batchSize (the last may be shorter), in that order
// whatever the number of workers: batch k holds indices[k·batchSize :
// (k+1)·batchSize]. Images are loaded by LoadOptions.Workers goroutines while
// the consumer works, at most LoadOptions.Prefetch batches ahead, so memory
// stays bounded however long the stream is.
//
//	s := datasets.NewStream(images, idx, 64, datasets.LoadOptions{})
//	defer s.Close()
//	for s.Next() {
//		b := s.Batch()
//		...
//	}
//	if err := s.Err(); err != nil { ... }
type Stream struct {
	src     Images
	total   int
	ready   chan *pending
	stop    chan struct{}
	once    sync.Once
	cur     Batch
	err     error
	done    int
	prog    func(done, total int)
	wg      sync.WaitGroup
	stopped bool
}

// NewStream starts loading; see Stream. A batchSize ≤ 0 gives a stream that
// fails with an error. Call Close when done with the stream (also after an
// error or an early stop) to stop its goroutines.
func NewStream(src Images, indices []int, batchSize int, opt LoadOptions) *Stream {
	prefetch := opt.Prefetch
	if prefetch <= 0 {
		prefetch = 2
	}
	s := &Stream{src: src, total: len(indices), ready: make(chan *pending, prefetch),
		stop: make(chan struct{}), prog: opt.Progress}
	if batchSize <= 0 {
		s.err = fmt.Errorf("datasets: batch size %d", batchSize)
		close(s.ready)
		return s
	}
	c, h, w := src.Shape()
	size := c * h * w
	n := src.Len()
	jobs := make(chan job, 2*opt.workers())
	// Workers.
	for range opt.workers() {
		s.wg.Add(1)
		go func() {
			defer s.wg.Done()
			for j := range jobs {
				i := j.p.batch.Indices[j.pos]
				var err error
				select {
				case <-s.stop:
					err = fmt.Errorf("datasets: stream closed")
				default:
					if i < 0 || i >= n {
						err = fmt.Errorf("datasets: index %d outside 0..%d", i, n-1)
					} else {
						err = src.Load(i, j.p.batch.X[j.pos*size:(j.pos+1)*size])
						j.p.batch.Y[j.pos] = int32(src.Label(i))
					}
				}
				if err != nil {
					j.p.fail(j.pos, err)
				}
				j.p.left.Done()
			}
		}()
	}
	// Feeder: one batch after the other, blocking while prefetch batches wait.
	s.wg.Add(1)
	go func() {
		defer s.wg.Done()
		defer close(jobs)
		defer close(s.ready)
		for start := 0; start < len(indices); start += batchSize {
			idx := indices[start:min(start+batchSize, len(indices))]
			p := &pending{batch: Batch{X: make([]float32, len(idx)*size), Y: make([]int32, len(idx)), Indices: idx}}
			p.left.Add(len(idx))
			select {
			case s.ready <- p:
			case <-s.stop:
				return
			}
			for pos := range idx {
				select {
				case jobs <- job{p, pos}:
				case <-s.stop:
					// Unsent positions will never be loaded; release them.
					p.fail(pos, fmt.Errorf("datasets: stream closed"))
					for range len(idx) - pos {
						p.left.Done()
					}
					return
				}
			}
		}
	}()
	return s
}

// Next waits for the next batch and reports whether there is one; it returns
// false at the end of the stream or on the first error (see Err).
func (s *Stream) Next() bool {
	if s.err != nil || s.stopped {
		return false
	}
	p, ok := <-s.ready
	if !ok {
		return false
	}
	p.left.Wait()
	if p.err != nil {
		s.err = p.err
		s.Close()
		return false
	}
	s.cur = p.batch
	s.done += len(p.batch.Indices)
	if s.prog != nil {
		s.prog(s.done, s.total)
	}
	return true
}

// Batch returns the batch of the last successful Next. Its slices are not
// reused by the stream.
func (s *Stream) Batch() Batch { return s.cur }

// Err returns the first error met (an image that failed to load names its
// file), or nil.
func (s *Stream) Err() error { return s.err }

// Close stops the stream's goroutines and waits for them; it is safe to call
// more than once.
func (s *Stream) Close() {
	s.once.Do(func() {
		s.stopped = true
		close(s.stop)
		// Drain so the feeder is not blocked on a full ready channel.
		go func() {
			for range s.ready {
			}
		}()
		s.wg.Wait()
	})
}

// LoadBatch loads the images at indices in parallel (opt.Workers goroutines)
// into one NCHW batch and returns it with their labels.
func LoadBatch(src Images, indices []int, opt LoadOptions) (x []float32, y []int32, err error) {
	if len(indices) == 0 {
		return nil, nil, nil
	}
	opt.Progress = nil
	s := NewStream(src, indices, len(indices), opt)
	defer s.Close()
	if !s.Next() {
		return nil, nil, s.Err()
	}
	b := s.Batch()
	return b.X, b.Y, nil
}

// SequentialBatches returns a batch function for evaluation loops that ask
// for consecutive batches 0..b−1, b..2b−1, … of src (as fptrain.Accuracy
// does): while the requests follow that order they are served from a Stream
// that loads ahead in parallel; any other request is loaded directly with
// LoadBatch. opt.Progress is reported as the stream delivers. Call the
// returned stop function when done.
func SequentialBatches(src Images, batchSize int, opt LoadOptions) (fn func(idx []int) ([]float32, []int32, error), stop func()) {
	all := make([]int, src.Len())
	for i := range all {
		all[i] = i
	}
	var s *Stream
	next := 0 // index of the stream's next batch's first image
	fn = func(idx []int) ([]float32, []int32, error) {
		if len(idx) > 0 && idx[0] == 0 && (s == nil || next != 0) { // a new pass
			if s != nil {
				s.Close()
			}
			s = NewStream(src, all, batchSize, opt)
			next = 0
		}
		if s != nil && len(idx) == min(batchSize, len(all)-next) && sequentialFrom(idx, next) {
			if !s.Next() {
				if err := s.Err(); err != nil {
					return nil, nil, err
				}
				return nil, nil, fmt.Errorf("datasets: stream ended early")
			}
			b := s.Batch()
			next += len(b.Indices)
			if next >= len(all) {
				s.Close()
				s = nil
			}
			return b.X, b.Y, nil
		}
		return LoadBatch(src, idx, opt)
	}
	stop = func() {
		if s != nil {
			s.Close()
			s = nil
		}
	}
	return fn, stop
}

// sequentialFrom reports whether idx is start, start+1, ….
func sequentialFrom(idx []int, start int) bool {
	for k, i := range idx {
		if i != start+k {
			return false
		}
	}
	return true
}
