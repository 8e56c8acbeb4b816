package domain

import (
	"encoding/json"
	"testing"
	"time"
)

func benchBody(b *testing.B) []byte {
	e := Event{ID: fixtures()[0].ID, Type: RoomBroadcastSent, App: "load", Aggregate: KindRoom, AggregateID: "room-17", Seq: 1234,
		Time: time.Date(2026, 11, 21, 10, 0, 0, 123456789, time.UTC), Correlation: "01KAK3J7Q8ZX5V2B8T9W0N3E4S",
		Causation: "01KAK3J7Q8ZX5V2B8T9W0N3E4S", Data: &BroadcastSentData{From: "user-17", FromName: "user-17",
			Session: "sess-17", Body: "message 1234 to the room"}}
	body, _, err := EncodeEvents("9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08", []Event{e})
	if err != nil {
		b.Fatal(err)
	}
	return body
}

// BenchmarkDecodeEvents is the cost every projection pays per message.
func BenchmarkDecodeEvents(b *testing.B) {
	body := benchBody(b)
	b.ReportAllocs()
	for b.Loop() {
		if _, err := DecodeEvents(body); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkDecodeEventsStdlib is the same with encoding/json, for comparison.
func BenchmarkDecodeEventsStdlib(b *testing.B) {
	body := benchBody(b)
	type env struct {
		ID, Type, App, Aggregate, AggregateID string
		Seq                                   uint64
		Time                                  time.Time
		Correlation, Causation, Prev          string
		Data                                  json.RawMessage
	}
	b.ReportAllocs()
	for b.Loop() {
		var raws []json.RawMessage
		if err := json.Unmarshal(body, &raws); err != nil {
			b.Fatal(err)
		}
		var e env
		if err := json.Unmarshal(raws[0], &e); err != nil {
			b.Fatal(err)
		}
		var p BroadcastSentData
		if err := json.Unmarshal(e.Data, &p); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkEncodeEvents(b *testing.B) {
	e := fixtures()[8]
	b.ReportAllocs()
	for b.Loop() {
		if _, _, err := EncodeEvents("", []Event{e}); err != nil {
			b.Fatal(err)
		}
	}
}
