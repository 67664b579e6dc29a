package depmap

import (
	"strings"

	"github.com/phoenixsre/phoenix"
)

// ComponentName turns a service name as tracers report it ("coreSrv",
// "yelp_main/api_proxy", "Orders") into a phoenix.ComponentID: lower-cased,
// every character outside [a-z0-9_.-] replaced by '-', and leading or
// trailing characters other than letters and digits trimmed. It reports
// false when nothing is left or the result is longer than 64 characters.
// Two names that differ only in case or punctuation become one node, which
// is what a reader of the traces would draw.
func ComponentName(s string) (phoenix.ComponentID, bool) {
	if validName(s) {
		return phoenix.ComponentID(s), true
	}
	var b strings.Builder
	b.Grow(len(s))
	for _, r := range strings.ToLower(s) {
		switch {
		case r >= 'a' && r <= 'z', r >= '0' && r <= '9', r == '_', r == '.', r == '-':
			b.WriteRune(r)
		default:
			b.WriteByte('-')
		}
	}
	out := strings.TrimFunc(b.String(), func(r rune) bool { return !isAlnum(byte(r)) })
	if !validName(out) {
		return "", false
	}
	return phoenix.ComponentID(out), true
}

// validName is phoenix.ComponentID.Validate without the regular
// expression, which would cost more than the rest of a span's handling.
func validName(s string) bool {
	if len(s) == 0 || len(s) > 64 || !isAlnum(s[0]) || !isAlnum(s[len(s)-1]) {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !isAlnum(c) && c != '_' && c != '.' && c != '-' {
			return false
		}
	}
	return true
}

func isAlnum(c byte) bool { return c >= 'a' && c <= 'z' || c >= '0' && c <= '9' }

// maxInterned bounds the interned names; past it names are copied, not
// shared, which costs memory per span but never unbounded table growth.
const maxInterned = 4096

// interner maps names as decoded (which may point into a request buffer)
// to normalized, owned copies shared by every span that carries them, so
// that the span index neither pins decoder buffers nor holds a copy per
// span. The zero value is ready; it is not safe for concurrent use.
type interner struct {
	m map[string]internedName
}

type internedName struct {
	id phoenix.ComponentID
	ok bool
}

func (in *interner) name(s string) (phoenix.ComponentID, bool) {
	if v, hit := in.m[s]; hit { // a map lookup with a string key does not copy it
		return v.id, v.ok
	}
	id, ok := ComponentName(s)
	if ok && string(id) == s {
		id = phoenix.ComponentID(strings.Clone(s))
	}
	if in.m == nil {
		in.m = make(map[string]internedName)
	}
	if len(in.m) < maxInterned && len(s) <= 256 {
		in.m[strings.Clone(s)] = internedName{id: id, ok: ok}
	}
	return id, ok
}
