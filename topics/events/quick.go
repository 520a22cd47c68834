package events

import (
	"reflect"
	"strconv"
)

// quickShape reports whether data is one JSON object that matches the Go
// type t as decodeStrict wants it: exact known keys, none twice, every
// required field present, no nulls, no empty optional strings, integers
// without fraction or exponent, and nothing after the object. It allocates nothing. A false
// answer only means "take the slow path", which explains the problem; a true
// answer still leaves the syntax inside strings and the time formats to
// encoding/json.
func quickShape(data []byte, t reflect.Type) bool {
	s := quickScanner{data: data}
	s.ws()
	if !s.value(t) {
		return false
	}
	s.ws()
	return s.i == len(s.data)
}

type quickScanner struct {
	data []byte
	i    int
}

func (s *quickScanner) ws() {
	for s.i < len(s.data) {
		switch s.data[s.i] {
		case ' ', '\t', '\n', '\r':
			s.i++
		default:
			return
		}
	}
}

func (s *quickScanner) peek() byte {
	if s.i < len(s.data) {
		return s.data[s.i]
	}
	return 0
}

// expect consumes c after optional whitespace.
func (s *quickScanner) expect(c byte) bool {
	s.ws()
	if s.peek() != c {
		return false
	}
	s.i++
	return true
}

// next reads what follows a member of an object or an element of an array:
// a ',' (more follows) or the closer (the end); anything else is not ok.
func (s *quickScanner) next(closer byte) (more, ok bool) {
	s.ws()
	switch s.peek() {
	case ',':
		s.i++
		return true, true
	case closer:
		s.i++
		return false, true
	}
	return false, false
}

// integer reads -?[0-9]+ not followed by a fraction or an exponent and
// returns its text.
func (s *quickScanner) integer() ([]byte, bool) {
	start := s.i
	if s.peek() == '-' {
		s.i++
	}
	digits := s.i
	for s.i < len(s.data) && s.data[s.i] >= '0' && s.data[s.i] <= '9' {
		s.i++
	}
	switch s.peek() {
	case '.', 'e', 'E':
		return nil, false
	}
	return s.data[start:s.i], s.i > digits
}

// str consumes a string and returns its raw content (escapes left as they
// are) and whether it had escapes.
func (s *quickScanner) str() (raw []byte, escaped, ok bool) {
	if s.peek() != '"' {
		return nil, false, false
	}
	s.i++
	start := s.i
	for s.i < len(s.data) {
		switch c := s.data[s.i]; {
		case c == '"':
			raw = s.data[start:s.i]
			s.i++
			return raw, escaped, true
		case c == '\\':
			escaped = true
			s.i += 2
		case c < 0x20:
			return nil, false, false
		default:
			s.i++
		}
	}
	return nil, false, false
}

func (s *quickScanner) value(t reflect.Type) bool {
	s.ws()
	for t.Kind() == reflect.Pointer {
		t = t.Elem()
	}
	switch {
	case t == timeType, t.Kind() == reflect.String:
		_, _, ok := s.str()
		return ok
	case t.Kind() == reflect.Struct:
		return s.object(fieldsOf(t))
	case t.Kind() == reflect.Slice:
		if !s.expect('[') {
			return false
		}
		if s.ws(); s.peek() == ']' {
			s.i++
			return true
		}
		for {
			if !s.value(t.Elem()) {
				return false
			}
			if more, ok := s.next(']'); !more {
				return ok
			}
		}
	case t.Kind() == reflect.Map:
		if !s.expect('{') {
			return false
		}
		if s.ws(); s.peek() == '}' {
			s.i++
			return true
		}
		// The keys seen, to refuse a duplicate without allocating: the maps
		// of our events are small (a contact per channel); a bigger one, or
		// an escaped key (which may equal an unescaped one), takes the slow
		// path.
		var keys [8][]byte
		for n := 0; ; n++ {
			s.ws()
			key, escaped, ok := s.str()
			if !ok || escaped || n == len(keys) || !s.expect(':') || !s.value(t.Elem()) {
				return false
			}
			for _, k := range keys[:n] {
				if string(k) == string(key) {
					return false
				}
			}
			keys[n] = key
			if more, ok := s.next('}'); !more {
				return ok
			}
		}
	case t.Kind() >= reflect.Int && t.Kind() <= reflect.Int64:
		num, ok := s.integer()
		if !ok {
			return false
		}
		_, err := strconv.ParseInt(string(num), 10, t.Bits())
		return err == nil
	case t.Kind() == reflect.Bool:
		for _, lit := range []string{"true", "false"} {
			if len(s.data)-s.i >= len(lit) && string(s.data[s.i:s.i+len(lit)]) == lit {
				s.i += len(lit)
				return true
			}
		}
		return false
	}
	return false
}

func (s *quickScanner) object(info *structInfo) bool {
	if len(info.fields) > 64 || !s.expect('{') {
		return false
	}
	var seen uint64
	if s.ws(); s.peek() == '}' {
		s.i++
	} else {
		for {
			s.ws()
			key, escaped, ok := s.str()
			if !ok || escaped || !s.expect(':') {
				return false
			}
			idx, ok := info.index[string(key)]
			if !ok {
				return false
			}
			if seen&(1<<idx) != 0 {
				return false // a duplicate key: the slow path names it
			}
			f := info.fields[idx]
			s.ws()
			if !f.required && f.typ.Kind() == reflect.String && len(s.data)-s.i >= 2 && s.data[s.i] == '"' && s.data[s.i+1] == '"' {
				return false // an empty optional string: the slow path says so
			}
			if !s.value(f.typ) {
				return false
			}
			seen |= 1 << idx
			if more, ok := s.next('}'); !more {
				if !ok {
					return false
				}
				break
			}
		}
	}
	return seen&info.requiredMask == info.requiredMask
}
