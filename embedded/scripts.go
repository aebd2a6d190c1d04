package embedded

import (
	"errors"
	"strings"
	"sync"
	"time"

	"github.com/alicebob/miniredis/v2"
	"github.com/alicebob/miniredis/v2/server"
)

// Keys is what a script's Go equivalent may do to the embedded Redis's string keys.
type Keys interface {
	// Get returns a string key's value, and whether it exists.
	Get(key string) (string, bool)
	// Set sets a string key; a ttl above zero expires it, zero keeps it until deleted.
	Set(key, value string, ttl time.Duration)
	Del(key string)
	Exists(key string) bool
	// PTTL is Redis's PTTL: milliseconds left, -1 for a key without expiry, -2 for a missing key.
	PTTL(key string) int64
}

// Script is the Go equivalent of a Lua script: the same keys and arguments in, the same reply out (a string, an
// int64, or a []any of those).
type Script func(k Keys, keys, args []string) (any, error)

// Emulate has the server run fn instead of interpreting the script when a client calls EVALSHA with its SHA-1
// digest (hex).
// miniredis builds a fresh Lua interpreter for every call, which made the notifier's two scripts per delivery
// the largest cost in `fraudpipe run` that was not the pipeline's own; clients still send the same EVALSHA as
// to a real Redis. Emulated scripts run one at a time, so a script is atomic against every other emulated one;
// only the keys no other command writes may be emulated, and not inside MULTI (the hook runs them at once). Key
// expiry runs between the steps of one (each takes miniredis's lock on its own): a lease that runs out mid-claim
// reads as busy with no time left, which the caller treats as a lease about to end.
func (r *Redis) Emulate(digest string, fn Script) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.scripts == nil {
		r.scripts = map[string]Script{}
		r.m.Server().SetPreHook(r.hook)
	}
	r.scripts[strings.ToLower(digest)] = fn
}

// hook answers EVALSHA for emulated scripts and leaves every other command to miniredis.
func (r *Redis) hook(c *server.Peer, cmd string, args ...string) bool {
	if cmd != "EVALSHA" || len(args) < 2 {
		return false
	}
	r.mu.Lock()
	fn := r.scripts[strings.ToLower(args[0])]
	r.mu.Unlock()
	if fn == nil {
		return false
	}
	keys, rest, ok := splitKeys(args[1:])
	if !ok {
		return false // miniredis reports the malformed call as Redis would
	}
	r.run.Lock()
	reply, err := fn(directKeys{r.m}, keys, rest)
	r.run.Unlock()
	if err != nil {
		c.WriteError("ERR " + err.Error())
		return true
	}
	writeReply(c, reply)
	return true
}

// splitKeys splits EVALSHA's arguments after the digest: numkeys, the keys, the arguments.
func splitKeys(args []string) (keys, rest []string, ok bool) {
	if len(args) == 0 {
		return nil, nil, false
	}
	n := 0
	for _, ch := range args[0] {
		if ch < '0' || ch > '9' || n > len(args) {
			return nil, nil, false
		}
		n = n*10 + int(ch-'0')
	}
	if args[0] == "" || n > len(args)-1 {
		return nil, nil, false
	}
	return args[1 : 1+n], args[1+n:], true
}

func writeReply(c *server.Peer, v any) {
	switch v := v.(type) {
	case string:
		c.WriteBulk(v)
	case int64:
		c.WriteInt(int(v))
	case []any:
		c.WriteLen(len(v))
		for _, e := range v {
			writeReply(c, e)
		}
	default:
		c.WriteNull()
	}
}

// directKeys is Keys on miniredis's direct API, the selected database being the one clients use (0).
type directKeys struct{ m *miniredis.Miniredis }

func (k directKeys) Get(key string) (string, bool) {
	v, err := k.m.Get(key)
	return v, !errors.Is(err, miniredis.ErrKeyNotFound) && err == nil
}

func (k directKeys) Set(key, value string, ttl time.Duration) {
	k.m.Set(key, value) // clears any expiry, as SET does
	if ttl > 0 {
		k.m.SetTTL(key, ttl)
	}
}

func (k directKeys) Del(key string) { k.m.Del(key) }

func (k directKeys) Exists(key string) bool { return k.m.Exists(key) }

func (k directKeys) PTTL(key string) int64 {
	if !k.m.Exists(key) {
		return -2
	}
	ttl := k.m.TTL(key)
	if ttl <= 0 {
		return -1
	}
	return ttl.Milliseconds()
}

// emulation state, kept with the server.
type emulation struct {
	mu      sync.Mutex // guards scripts
	scripts map[string]Script
	run     sync.Mutex // one emulated script at a time
}
