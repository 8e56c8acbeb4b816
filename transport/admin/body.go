package admin

import (
	"errors"
	"fmt"
	"io"
	"net/http"
	"reflect"
	"strconv"
	"strings"

	jsonv2 "github.com/go-json-experiment/json"
	"github.com/go-json-experiment/json/jsontext"

	"github.com/roomlog/roomlog/transport/protocol"
)

// Request bodies: one JSON object of the documented fields, strictly read.

func decodeBody(r *http.Request, v any) error {
	if r.ContentLength == 0 {
		return nil
	}
	// Bodies are small (a reason, a user ID): read whole, so that text that
	// is not valid UTF-8 is refused rather than altered by the decoder.
	b, err := io.ReadAll(io.LimitReader(r.Body, maxBody+1))
	if err != nil {
		return protocol.ErrMalformedRequest.With("%v", err)
	}
	if len(b) > maxBody {
		return protocol.ErrMalformedRequest.With("the body is over %d bytes", maxBody)
	}
	if err := strictUnmarshal(b, v); err != nil {
		// The decoder refuses text that is not valid Unicode too: in a body
		// that is JSON apart from that, it is invalid_argument.
		if terr := protocol.CheckText(b); terr != nil &&
			jsontext.Value(b).IsValid(jsontext.AllowInvalidUTF8(true), jsontext.AllowDuplicateNames(true)) {
			return terr
		}
		return protocol.ErrMalformedRequest.With("%v", err)
	}
	return nil
}

// strictUnmarshal decodes one JSON object into v, refusing what
// encoding/json lets by. A misspelt field must not be dropped silently,
// least of all one whose absence widens what the call does ("room" for
// "rooms" in a token request would grant every room); nor may a field named
// in another case ("User", which encoding/json takes for "user"), or given
// twice (the last one won), replace the documented one.
func strictUnmarshal(b []byte, v any) error {
	err := jsonv2.Unmarshal(b, v, jsonv2.RejectUnknownMembers(true))
	var be *bodyError
	var se *jsonv2.SemanticError
	var syn *jsontext.SyntacticError
	switch {
	case err == nil:
		return nil
	case errors.As(err, &be):
		return be // from a request's own UnmarshalJSON
	case errors.Is(err, jsontext.ErrDuplicateName) && errors.As(err, &syn):
		return &bodyError{fmt.Sprintf("field %q given twice", syn.JSONPointer.LastToken())}
	case !errors.As(err, &se):
		return err // the JSON text itself: the decoder says where
	case errors.Is(se.Err, jsonv2.ErrUnknownName):
		return &bodyError{fmt.Sprintf("unknown field %q", se.JSONPointer.LastToken())}
	case se.JSONPointer == "":
		return &bodyError{"the body is not one JSON object"}
	}
	field := strings.TrimPrefix(string(se.JSONPointer), "/")
	if errors.Is(se.Err, strconv.ErrRange) {
		return &bodyError{fmt.Sprintf("field %q: out of range", field)}
	}
	want, got := jsonKindOf(se.GoType), jsonKindName(se.JSONKind)
	if want == "a whole number" && got == "a number" {
		return &bodyError{fmt.Sprintf("field %q: want a whole number", field)}
	}
	return &bodyError{fmt.Sprintf("field %q: want %s, not %s", field, want, got)}
}

// jsonKindName names a JSON kind as a reader would.
func jsonKindName(k jsontext.Kind) string {
	switch k {
	case '"':
		return "a string"
	case '0':
		return "a number"
	case 't', 'f':
		return "true or false"
	case 'n':
		return "null"
	case '{':
		return "an object"
	case '[':
		return "an array"
	}
	return "that"
}

// bodyError says what is wrong with a request body in the API's terms,
// not the decoder's (its Go types).
type bodyError struct{ msg string }

func (e *bodyError) Error() string { return e.msg }

// jsonKindOf names the JSON a field of Go type t takes.
func jsonKindOf(t reflect.Type) string {
	if t == nil {
		return "another kind"
	}
	for t.Kind() == reflect.Pointer {
		t = t.Elem()
	}
	switch t.Kind() {
	case reflect.String:
		return "a string"
	case reflect.Bool:
		return "true or false"
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64, reflect.Uint, reflect.Uint8,
		reflect.Uint16, reflect.Uint32, reflect.Uint64:
		return "a whole number"
	case reflect.Slice, reflect.Array:
		return "an array"
	}
	return "an object"
}

// maxBody is the largest admin request body: a token request for as many
// rooms as a token can name, with room to spare.
const maxBody = 64 << 10
