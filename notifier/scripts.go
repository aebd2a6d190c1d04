package notifier

import (
	"errors"
	"strconv"
	"time"
)

// ScriptKeys is what the Go equivalents of the store's scripts do to Redis string keys (embedded.Keys).
type ScriptKeys interface {
	Get(key string) (string, bool)
	Set(key, value string, ttl time.Duration)
	Del(key string)
	Exists(key string) bool
	PTTL(key string) int64
}

// ScriptEquivalent is a Lua script of the store, by its SHA-1 digest (what EVALSHA sends), and Go code that does
// the same to the same keys and arguments and gives the same reply.
type ScriptEquivalent struct {
	Digest string
	Go     func(k ScriptKeys, keys, args []string) (any, error)
}

// ScriptEquivalents lists the scripts the store runs for every delivery, for a server that can run them natively
// (the embedded Redis, whose Lua interpreter is rebuilt per call). TestScriptsAgreeWithTheirLua holds each to
// its Lua on redis-server.
func ScriptEquivalents() []ScriptEquivalent {
	return []ScriptEquivalent{
		{Digest: claimScript.Hash(), Go: claimNative},
		{Digest: settleScript.Hash(), Go: settleNative},
	}
}

var errScriptArgs = errors.New("wrong number of keys or arguments")

// claimNative is claimScript: KEYS delivery, attempt marker; ARGV token, lease ms.
func claimNative(k ScriptKeys, keys, args []string) (any, error) {
	if len(keys) < 2 || len(args) < 2 {
		return nil, errScriptArgs
	}
	if v, ok := k.Get(keys[0]); ok {
		if v == sent || v == failed {
			return []any{v, int64(0), int64(0)}, nil
		}
		return []any{busy, k.PTTL(keys[0]), int64(0)}, nil
	}
	ms, err := strconv.ParseInt(args[1], 10, 64)
	if err != nil || ms <= 0 {
		return nil, errors.New("invalid expire time in 'set' command")
	}
	k.Set(keys[0], args[0], time.Duration(ms)*time.Millisecond)
	attempted := int64(0)
	if k.Exists(keys[1]) {
		attempted = 1
	}
	return []any{claimed, int64(0), attempted}, nil
}

// settleNative is settleScript: KEYS delivery, attempt marker; ARGV token, outcome, its ttl ms, clear marker.
func settleNative(k ScriptKeys, keys, args []string) (any, error) {
	if len(keys) < 2 || len(args) < 4 {
		return nil, errScriptArgs
	}
	if v, ok := k.Get(keys[0]); !ok || v != args[0] {
		return int64(0), nil
	}
	if args[1] == "" {
		k.Del(keys[0])
	} else {
		ms, err := strconv.ParseInt(args[2], 10, 64)
		if err != nil || ms <= 0 {
			return nil, errors.New("invalid expire time in 'set' command")
		}
		k.Set(keys[0], args[1], time.Duration(ms)*time.Millisecond)
	}
	if args[3] == "1" {
		k.Del(keys[1])
	}
	return int64(1), nil
}
