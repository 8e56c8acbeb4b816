// Package history pages back through a room's messages in the log (ZIM
// queryHistoryMessage): its broadcast messages and the custom commands
// addressed to one member, newest first. Barrage messages are never logged,
// so they are never in a history.
package history

import (
	"context"
	"errors"

	"github.com/roomlog/roomlog/domain"
	"github.com/roomlog/roomlog/eventstore"
)

// Config configures a Reader.
type Config struct {
	Log *eventstore.Log
	// MaxScan bounds the log records one page reads (one round trip each):
	// a page of a room with few messages among many other events ends early,
	// with Next set, rather than keep its reader waiting. Default 2,000.
	MaxScan int
}

// Reader reads room histories. It holds no state: every page is read from
// the log.
type Reader struct {
	log     *eventstore.Log
	maxScan int
}

// New returns a Reader.
func New(cfg Config) (*Reader, error) {
	if cfg.Log == nil {
		return nil, errors.New("history: Log is required")
	}
	if cfg.MaxScan <= 0 {
		cfg.MaxScan = 2000
	}
	return &Reader{log: cfg.Log, maxScan: cfg.MaxScan}, nil
}

// Query says which page to read.
type Query struct {
	Room domain.Key
	// For is the member reading: custom commands addressed to others are
	// left out.
	For domain.UserID
	// Before is the log cursor the page ends below (a previous page's Next);
	// 0 for the newest page.
	Before uint64
	// AtMost, if not 0, leaves out events after this room seq: a login's
	// last messages as of its snapshot.
	AtMost uint64
	// Count is the most messages the page holds.
	Count int
}

// Message is one message of a history.
type Message struct {
	// Event is the broadcast_sent or custom_command_sent event.
	Event domain.Event
	// Cursor is the log position of the message that holds it.
	Cursor uint64
}

// Page is a page of a history, newest first.
type Page struct {
	Messages []Message
	// Next is the Before of the next older page; 0 when there is none. A
	// page may hold fewer than Count messages and still have a next one,
	// when it read MaxScan records without finding them all.
	Next uint64
}

// errFull stops a read once the page is full.
var errFull = errors.New("page full")

// Read reads one page. A history starts at the room's latest creation: a
// room destroyed and created again does not show its earlier life.
func (r *Reader) Read(ctx context.Context, q Query) (Page, error) {
	if q.Count <= 0 {
		return Page{}, nil
	}
	subject := r.log.Subject(string(q.Room.App), string(q.Room.Kind), q.Room.ID)
	var p Page
	scanned := 0
	_, err := r.log.ReadSubjectBackward(ctx, subject, q.Before, func(rec eventstore.Record) (bool, error) {
		events, err := domain.DecodeEvents(rec.Data)
		if err != nil {
			return true, nil // not written by an engine: passed over, as by the nodes
		}
		start := len(p.Messages)
		for i := len(events) - 1; i >= 0; i-- {
			e := events[i]
			if q.AtMost > 0 && e.Seq > q.AtMost {
				continue
			}
			if _, ok := e.Data.(*domain.RoomCreatedData); ok {
				return false, nil
			}
			if !visible(&e, q.For) {
				continue
			}
			if len(p.Messages) == q.Count {
				// One more message exists: the next page starts with this
				// record, whose messages are never split across pages.
				p.Next = rec.Seq + 1
				if start > 0 {
					p.Messages = p.Messages[:start]
				} else {
					p.Next = rec.Seq
				}
				return false, errFull
			}
			p.Messages = append(p.Messages, Message{Event: e, Cursor: rec.Seq})
		}
		if scanned++; scanned >= r.maxScan {
			p.Next = rec.Seq // this record is done: the next page starts below it
			return false, nil
		}
		return true, nil
	})
	if err != nil && !errors.Is(err, errFull) {
		return Page{}, err
	}
	return p, nil
}

// visible reports whether e is a message user sees in its history.
func visible(e *domain.Event, user domain.UserID) bool {
	switch d := e.Data.(type) {
	case *domain.BroadcastSentData:
		return true
	case *domain.CustomCommandSentData:
		if len(d.To) == 0 || d.From == user {
			return true
		}
		for _, u := range d.To {
			if u == user {
				return true
			}
		}
	}
	return false
}
