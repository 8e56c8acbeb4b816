package cursor

import (
	"encoding/json"
	"errors"
	"testing"
)

func TestCursorsPrintParseAndOrder(t *testing.T) {
	for _, c := range []struct {
		text string
		want Cursor
	}{{"1042.1", Cursor{1042, 1}}, {"7.0", Cursor{7, 0}}, {"7", Cursor{7, wholeMessage}}} {
		got, err := Parse(c.text)
		if err != nil || got != c.want {
			t.Errorf("Parse(%q) = %v, %v; want %v", c.text, got, err, c.want)
		}
	}
	for _, bad := range []string{"", "x.1", "1.x", "1.-1", "-1.0", "1.2.3"} {
		if _, err := Parse(bad); !errors.Is(err, ErrInvalid) {
			t.Errorf("Parse(%q) = %v, want ErrInvalid", bad, err)
		}
	}
	if !(Cursor{5, 2}).Less(Cursor{6, 0}) || !(Cursor{5, 0}).Less(Cursor{5, 1}) || (Cursor{5, 1}).Less(Cursor{5, 1}) {
		t.Error("cursors are not ordered by message, then index")
	}
	b, _ := json.Marshal(struct{ C Cursor }{Cursor{12, 3}})
	var back struct{ C Cursor }
	if string(b) != `{"C":"12.3"}` || json.Unmarshal(b, &back) != nil || back.C != (Cursor{12, 3}) {
		t.Errorf("JSON round trip: %s -> %v", b, back.C)
	}
}
