package proxy

import (
	"sync"
	"time"
)

// lazyWatch is how long a request runs before anything is set up to end it
// early: its connection watched for the client going away (h1Server), its
// upstream connection tied to its context (h1Transport). A request whose
// context ends within it runs on until it ends by itself or lazyWatch has
// passed. Nearly all requests are over by then, and skip that set-up.
const lazyWatch = 10 * time.Millisecond

// lazyList calls the start function of each listed item lazyWatch after it
// was listed, on one timer for all of them. A timer per request, set and
// stopped thousands of times a second, wakes an idle thread whenever it
// becomes the earliest of its P (runtime.wakeNetPoller starts an M to poll
// for it): one futex wake and two context switches per request, tens of
// microseconds when requests come one at a time (BENCHMARKS.md). The list
// is in the order items were added, so their due times only grow.
type lazyList struct {
	mu         sync.Mutex
	head, tail *lazyItem
	timer      *time.Timer
	running    bool // the timer is set, or its function is running
}

// lazyItem is an entry of a lazyList, kept in what it stands for, so that
// listing it allocates nothing. Its fields other than start belong to the
// list and are used under its lock.
type lazyItem struct {
	start      func() // called under the list's lock, when due; set before add
	due        time.Time
	prev, next *lazyItem
	listed     bool
}

// add lists it, anew if it is listed already.
func (l *lazyList) add(it *lazyItem) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.unlink(it)
	it.due = time.Now().Add(lazyWatch)
	it.prev, it.listed = l.tail, true
	if l.tail != nil {
		l.tail.next = it
	} else {
		l.head = it
	}
	l.tail = it
	if l.running {
		return
	}
	l.running = true
	if l.timer == nil {
		l.timer = time.AfterFunc(lazyWatch, l.fire)
	} else {
		l.timer.Reset(lazyWatch)
	}
}

// remove takes it off the list, if it is on it.
func (l *lazyList) remove(it *lazyItem) {
	l.mu.Lock()
	l.unlink(it)
	l.mu.Unlock()
}

func (l *lazyList) unlink(it *lazyItem) {
	if !it.listed {
		return
	}
	if it.prev != nil {
		it.prev.next = it.next
	} else {
		l.head = it.next
	}
	if it.next != nil {
		it.next.prev = it.prev
	} else {
		l.tail = it.prev
	}
	it.prev, it.next, it.listed = nil, nil, false
}

// fire starts the items that are due and sets the timer for the next.
// Start functions run under the list's lock: nothing may take that lock
// while holding one that a start function takes.
func (l *lazyList) fire() {
	now := time.Now()
	l.mu.Lock()
	defer l.mu.Unlock()
	for l.head != nil && !l.head.due.After(now) {
		it := l.head
		l.unlink(it)
		it.start()
	}
	if l.head == nil {
		l.running = false
		return
	}
	l.timer.Reset(l.head.due.Sub(now))
}
