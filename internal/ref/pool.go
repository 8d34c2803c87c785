package ref

import (
	"sync"
	"sync/atomic"
)

// task is work split into numbered blocks; do may run blocks of one task on several
// goroutines at once, and worker (0 <= worker < pool size) names the goroutine, for scratch.
type task interface {
	do(worker, block int)
}

// pool runs tasks on a fixed set of goroutines. Blocks are handed out dynamically, so which
// goroutine computes a block varies from run to run: tasks must make each output element a
// function of its block alone. run does not allocate.
type pool struct {
	size  int // goroutines, the caller included
	jobs  chan job
	next  atomic.Int64
	wg    sync.WaitGroup
	close sync.Once
}

type job struct {
	t task
	n int
}

func newPool(size int) *pool {
	p := &pool{size: max(size, 1), jobs: make(chan job)}
	for w := 1; w < p.size; w++ {
		go func() {
			for j := range p.jobs {
				p.drain(j, w)
				p.wg.Done()
			}
		}()
	}
	return p
}

// run calls t.do for blocks 0..n-1 and returns when all are done.
func (p *pool) run(t task, n int) {
	if n <= 1 || p.size == 1 {
		for b := 0; b < n; b++ {
			t.do(0, b)
		}
		return
	}
	p.next.Store(0)
	helpers := min(p.size, n) - 1
	p.wg.Add(helpers)
	for range helpers {
		p.jobs <- job{t, n}
	}
	p.drain(job{t, n}, 0)
	p.wg.Wait()
}

func (p *pool) drain(j job, worker int) {
	for {
		b := int(p.next.Add(1) - 1)
		if b >= j.n {
			return
		}
		j.t.do(worker, b)
	}
}

// stop ends the goroutines.
func (p *pool) stop() { p.close.Do(func() { close(p.jobs) }) }
