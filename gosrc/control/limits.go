package control

import (
	"fmt"
	"reflect"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/zcfuse/zcfuse/gosrc/opq"
)

// Limits bound what clients may hold on a server. Zero fields take
// DefaultLimits.
//
// The per-user limits count by uid: a session's peer uid (SO_PEERCRED at
// connect), and for files held open through the mount the request's uid.
// Root and the server's owner are "privileged": each still has its own
// per-user limits, but none of their usage counts against the server-wide
// limits of everybody else, and the server-wide limits (Sessions,
// HalfOpen) never refuse them, so other users cannot lock them out.
//
// Over a limit the requester alone is refused, with the errno of that
// limit (see each field); nobody else notices.
type Limits struct {
	// Sessions is the sessions of unprivileged users at once, together
	// (EAGAIN: the server is full).
	Sessions int
	// SessionsPerUser is one uid's sessions at once (EAGAIN).
	SessionsPerUser int
	// HalfOpen is the connections of unprivileged users not yet past
	// Hello, together; HalfOpenPerUser one uid's (EAGAIN). HelloTimeout
	// is how long a connection may take to send Hello before it is
	// closed.
	HalfOpen        int
	HalfOpenPerUser int
	HelloTimeout    time.Duration
	// ArenasPerSession and ArenaBytes bound one session's arenas, in
	// number and bytes (ENOSPC); ArenasPerUser and ArenaBytesPerUser
	// bound all of one uid's sessions together (EDQUOT).
	ArenasPerSession  int
	ArenaBytes        uint64
	ArenasPerUser     int
	ArenaBytesPerUser uint64
	// RegisteredBytesPerUser bounds the arena bytes of one uid the server
	// faults in and pins as fixed buffers; past it an arena is accepted
	// unregistered (served from its mapping, still without a copy).
	RegisteredBytesPerUser uint64
	// FixedSlots is the fixed-buffer table's size, for the whole server.
	FixedSlots uint32
	// AttachedFiles bounds one session's attached files (EMFILE);
	// AttachedFilesPerUser all of one uid's sessions together (EMFILE).
	AttachedFiles        int
	AttachedFilesPerUser int
	// OpenFilesPerUser bounds the files and directories one uid holds
	// open through the mount (each holds a server fd; EMFILE).
	OpenFilesPerUser int
	// QueueDepth is each session's op-queue depth, the most ops it has
	// in flight (a power of two up to opq.DefaultEntries; others round
	// down); QueueDepthPerUser bounds the depths of one uid's sessions
	// together: a session past it is refused (EAGAIN).
	QueueDepth        int
	QueueDepthPerUser int
}

// DefaultLimits are used for zero fields of Options.Limits. The server's
// fds are a shared budget (RLIMIT_NOFILE; 20,000 on the test machine):
// one user's open files and sessions stay well inside it.
var DefaultLimits = Limits{
	Sessions: 256, SessionsPerUser: 32,
	HalfOpen: 64, HalfOpenPerUser: 8, HelloTimeout: 2 * time.Second,
	ArenasPerSession: 64, ArenaBytes: 16 << 30, ArenasPerUser: 256, ArenaBytesPerUser: 64 << 30,
	RegisteredBytesPerUser: 4 << 30,
	FixedSlots:             1024,
	AttachedFiles:          1024, AttachedFilesPerUser: 4096,
	OpenFilesPerUser: 4096,
	QueueDepth:       256, QueueDepthPerUser: 8192,
}

// WithDefaults returns l with its zero fields taken from DefaultLimits,
// except QueueDepthPerUser, which defaults to room for SessionsPerUser
// sessions of QueueDepth each (so raising the sessions raises it too).
func (l Limits) WithDefaults() Limits {
	deriveQueues := l.QueueDepthPerUser == 0
	v, d := reflect.ValueOf(&l).Elem(), reflect.ValueOf(DefaultLimits)
	for i := range v.NumField() {
		if v.Field(i).IsZero() {
			v.Field(i).Set(d.Field(i))
		}
	}
	if deriveQueues {
		l.QueueDepthPerUser = l.SessionsPerUser * int(l.queueDepth())
	}
	return l
}

// resource is what a user's usage counts.
type resource int

const (
	resSessions resource = iota
	resHalfOpen
	resArenas
	resArenaBytes
	resRegisteredBytes
	resAttached
	resQueueEntries
	numResources
)

var resourceNames = [numResources]string{"sessions", "connections before Hello", "arenas", "arena bytes",
	"registered bytes", "attached files", "queue entries"}

// usage is one uid's holdings.
type usage [numResources]uint64

// users accounts what each uid holds, and what unprivileged users hold
// together for the server-wide limits.
type users struct {
	limits Limits
	owner  uint32

	mu     sync.Mutex
	by     map[uint32]*usage
	others usage // unprivileged users together
	// bugs counts gives of more than was taken (an accounting bug: the
	// server logs it through report and goes on, clamped at zero, rather
	// than die for everyone).
	bugs   atomic.Uint64
	report func(msg string)
}

func newUsers(l Limits, owner uint32) *users {
	return &users{limits: l, owner: owner, by: map[uint32]*usage{}}
}

// privileged: root and the server's owner.
func (u *users) privileged(uid uint32) bool { return uid == 0 || uid == u.owner }

// perUser is uid's limit on r (0: none).
func (u *users) perUser(r resource) (uint64, syscall.Errno) {
	l := u.limits
	switch r {
	case resSessions:
		return uint64(l.SessionsPerUser), syscall.EAGAIN
	case resHalfOpen:
		return uint64(l.HalfOpenPerUser), syscall.EAGAIN
	case resArenas:
		return uint64(l.ArenasPerUser), syscall.EDQUOT
	case resArenaBytes:
		return l.ArenaBytesPerUser, syscall.EDQUOT
	case resRegisteredBytes:
		return l.RegisteredBytesPerUser, syscall.EDQUOT
	case resAttached:
		return uint64(l.AttachedFilesPerUser), syscall.EMFILE
	case resQueueEntries:
		return uint64(l.QueueDepthPerUser), syscall.EAGAIN
	}
	return 0, 0
}

// serverWide is the limit on r for unprivileged users together (0: none).
func (u *users) serverWide(r resource) (uint64, syscall.Errno) {
	switch r {
	case resSessions:
		return uint64(u.limits.Sessions), syscall.EAGAIN
	case resHalfOpen:
		return uint64(u.limits.HalfOpen), syscall.EAGAIN
	}
	return 0, 0
}

// take charges n of r to uid, or refuses with the limit's errno and a
// message naming it; nothing is charged on refusal.
func (u *users) take(uid uint32, r resource, n uint64) error {
	u.mu.Lock()
	defer u.mu.Unlock()
	mine := u.by[uid]
	if mine == nil {
		mine = &usage{}
		u.by[uid] = mine
	}
	if max, errno := u.perUser(r); max != 0 && mine[r]+n > max {
		u.dropIdle(uid, mine)
		return fmt.Errorf("uid %d holds %d %s, its limit is %d: %w", uid, mine[r], resourceNames[r], max, errno)
	}
	priv := u.privileged(uid)
	if max, errno := u.serverWide(r); !priv && max != 0 && u.others[r]+n > max {
		u.dropIdle(uid, mine)
		return fmt.Errorf("the server holds %d %s of its users, its limit is %d: %w", u.others[r], resourceNames[r], max, errno)
	}
	mine[r] += n
	if !priv {
		u.others[r] += n
	}
	return nil
}

// give returns n of r that uid held.
func (u *users) give(uid uint32, r resource, n uint64) {
	u.mu.Lock()
	defer u.mu.Unlock()
	mine := u.by[uid]
	if mine == nil || mine[r] < n {
		u.bugs.Add(1)
		var held uint64
		if mine != nil {
			held = mine[r]
		}
		if u.report != nil {
			u.report(fmt.Sprintf("accounting bug: uid %d gives back %d %s, holds %d", uid, n, resourceNames[r], held))
		}
		if mine == nil {
			return
		}
		n = held
	}
	mine[r] -= n
	if !u.privileged(uid) {
		u.others[r] -= n
	}
	u.dropIdle(uid, mine)
}

// dropIdle forgets a uid that holds nothing (the map stays bounded by
// the uids holding something).
func (u *users) dropIdle(uid uint32, mine *usage) {
	if *mine == (usage{}) {
		delete(u.by, uid)
	}
}

// UserUsage is what one uid holds on the server, against its limits.
type UserUsage struct {
	UID                  uint32 `json:"uid"`
	Sessions             uint64 `json:"sessions"`
	HalfOpen             uint64 `json:"half_open"`
	Arenas               uint64 `json:"arenas"`
	ArenaBytes           uint64 `json:"arena_bytes"`
	RegisteredBytes      uint64 `json:"registered_bytes"`
	AttachedFiles        uint64 `json:"attached_files"`
	QueueEntries         uint64 `json:"queue_entries"`
	SessionsLimit        uint64 `json:"sessions_limit"`
	ArenasLimit          uint64 `json:"arenas_limit"`
	ArenaBytesLimit      uint64 `json:"arena_bytes_limit"`
	RegisteredBytesLimit uint64 `json:"registered_bytes_limit"`
	AttachedFilesLimit   uint64 `json:"attached_files_limit"`
	QueueEntriesLimit    uint64 `json:"queue_entries_limit"`
}

// usageOf is uid's usage against its limits.
func (u *users) usageOf(uid uint32) UserUsage {
	u.mu.Lock()
	defer u.mu.Unlock()
	return u.usageLocked(uid)
}

// usageLocked is usageOf with u.mu held.
func (u *users) usageLocked(uid uint32) UserUsage {
	var mine usage
	if p := u.by[uid]; p != nil {
		mine = *p
	}
	l := u.limits
	return UserUsage{UID: uid, Sessions: mine[resSessions], HalfOpen: mine[resHalfOpen], Arenas: mine[resArenas],
		ArenaBytes: mine[resArenaBytes], RegisteredBytes: mine[resRegisteredBytes], AttachedFiles: mine[resAttached],
		QueueEntries: mine[resQueueEntries], QueueEntriesLimit: uint64(l.QueueDepthPerUser),
		SessionsLimit: uint64(l.SessionsPerUser), ArenasLimit: uint64(l.ArenasPerUser), ArenaBytesLimit: l.ArenaBytesPerUser,
		RegisteredBytesLimit: l.RegisteredBytesPerUser, AttachedFilesLimit: uint64(l.AttachedFilesPerUser)}
}

// UsageOf is what uid holds on the server, against its limits.
func (s *Control) UsageOf(uid uint32) UserUsage { return s.users.usageOf(uid) }

// Usage is what every uid holding something holds, by uid.
func (s *Control) Usage() []UserUsage {
	u := s.users
	u.mu.Lock()
	defer u.mu.Unlock()
	out := make([]UserUsage, 0, len(u.by))
	for uid := range u.by {
		out = append(out, u.usageLocked(uid)) // one snapshot, under one lock
	}
	return out
}

// queueDepth is the per-session queue depth l gives: QueueDepth rounded
// down to a power of two, between 1 and opq.DefaultEntries.
func (l Limits) queueDepth() uint32 {
	d := uint32(1)
	for d*2 <= uint32(min(max(l.QueueDepth, 1), opq.DefaultEntries)) {
		d *= 2
	}
	return d
}
