package main

import (
	"encoding/json"
	"fmt"
	"html/template"
	"maps"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/roomlog/roomlog/projections/stats"
)

func (s *server) routes() http.Handler {
	reg := prometheus.NewRegistry()
	reg.MustRegister(collector{s})
	mux := http.NewServeMux()
	mux.Handle("GET /metrics", promhttp.HandlerFor(reg, promhttp.HandlerOpts{}))
	mux.HandleFunc("GET /stats.json", func(w http.ResponseWriter, r *http.Request) {
		s.mu.Lock()
		b, err := json.Marshal(struct {
			*stats.Stats
			Parked any `json:"parked"`
		}{s.stats, s.parked})
		s.mu.Unlock()
		if err != nil {
			http.Error(w, err.Error(), 500)
			return
		}
		w.Header().Set("Content-Type", "application/json")
		w.Write(b)
	})
	mux.HandleFunc("GET /{$}", s.page)
	return mux
}

// collector exposes the stats as Prometheus metrics, read at scrape time.
type collector struct{ s *server }

var (
	descMembers   = prometheus.NewDesc("roomlog_room_members", "Members in the room now.", []string{"app", "room"}, nil)
	descPeak      = prometheus.NewDesc("roomlog_room_peak_members", "Most members the room had at once.", []string{"app", "room"}, nil)
	descMessages  = prometheus.NewDesc("roomlog_room_messages_total", "Broadcast messages and custom commands sent in the room.", []string{"app", "room"}, nil)
	descStreams   = prometheus.NewDesc("roomlog_room_streams_published_total", "Streams published in the room.", []string{"app", "room"}, nil)
	descJoins     = prometheus.NewDesc("roomlog_room_joins_total", "Members who joined the room.", []string{"app", "room"}, nil)
	descLeaves    = prometheus.NewDesc("roomlog_leaves_total", "Members who left a room, by reason (kicks, timeouts and destroyed rooms included).", []string{"reason"}, nil)
	descDurations = prometheus.NewDesc("roomlog_session_duration_seconds", "Time a member spent in a room, from join to leave.", nil, nil)
	descEvents    = prometheus.NewDesc("roomlog_stats_events_total", "Room events folded.", nil, nil)
	descCursor    = prometheus.NewDesc("roomlog_stats_cursor_stream_seq", "Stream sequence of the last event folded.", nil, nil)
	descParked    = prometheus.NewDesc("roomlog_stats_parked_total", "Messages parked since start because they could not be read.", nil, nil)
)

func (collector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{descMembers, descPeak, descMessages, descStreams, descJoins, descLeaves, descDurations,
		descEvents, descCursor, descParked} {
		ch <- d
	}
}

func (c collector) Collect(ch chan<- prometheus.Metric) {
	c.s.mu.Lock()
	defer c.s.mu.Unlock()
	st := c.s.stats
	for _, r := range st.Rooms {
		l := []string{string(r.App), string(r.Room)}
		ch <- prometheus.MustNewConstMetric(descMembers, prometheus.GaugeValue, float64(len(r.Members)), l...)
		ch <- prometheus.MustNewConstMetric(descPeak, prometheus.GaugeValue, float64(r.Peak), l...)
		ch <- prometheus.MustNewConstMetric(descMessages, prometheus.CounterValue, float64(r.Messages), l...)
		ch <- prometheus.MustNewConstMetric(descStreams, prometheus.CounterValue, float64(r.Streams), l...)
		ch <- prometheus.MustNewConstMetric(descJoins, prometheus.CounterValue, float64(r.Joins), l...)
	}
	for reason, n := range st.Leaves {
		ch <- prometheus.MustNewConstMetric(descLeaves, prometheus.CounterValue, float64(n), string(reason))
	}
	buckets := map[float64]uint64{}
	var cum, count uint64
	for i, b := range stats.DurationBuckets {
		cum += st.Durations[i]
		buckets[b] = cum
	}
	count = cum + st.Durations[len(stats.DurationBuckets)]
	ch <- prometheus.MustNewConstHistogram(descDurations, count, st.DurationSum, buckets)
	ch <- prometheus.MustNewConstMetric(descEvents, prometheus.CounterValue, float64(st.Events))
	ch <- prometheus.MustNewConstMetric(descCursor, prometheus.GaugeValue, float64(st.Cursor.Seq))
	ch <- prometheus.MustNewConstMetric(descParked, prometheus.CounterValue, float64(len(c.s.parked)))
}

// ---- the page ----

type series struct {
	Name   string
	Color  string
	Points string // SVG polyline points
}

type bar struct {
	Label string
	Value uint64
	Width float64
}

type pageData struct {
	Cursor, Events, Rooms, Streams string
	From, To                       string
	Messages                       []series
	Concurrent                     []series
	Leaves                         []bar
	Durations                      []bar
	Parked                         int
}

const plotW, plotH = 640.0, 160.0

var colors = []string{"#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd"}

func (s *server) page(w http.ResponseWriter, r *http.Request) {
	s.mu.Lock()
	st := s.stats
	d := pageData{Cursor: st.Cursor.String(), Events: strconv.FormatUint(st.Events, 10), Rooms: strconv.Itoa(len(st.Rooms)),
		Streams: strconv.FormatUint(st.StreamsPublished, 10), Parked: len(s.parked)}
	minutes := slices.Sorted(maps.Keys(st.Minutes))
	if len(minutes) > 0 {
		lo, hi := minutes[0], minutes[len(minutes)-1]
		d.From, d.To = time.Unix(lo*60, 0).UTC().Format(time.RFC3339), time.Unix(hi*60, 0).UTC().Format(time.RFC3339)
		vals := map[int64]float64{}
		for _, m := range minutes {
			vals[m] = float64(st.Minutes[m].Messages)
		}
		d.Messages = []series{{Name: "messages per minute", Color: colors[0], Points: polyline(vals, lo, hi)}}
		// The five busiest rooms' concurrent users.
		rooms := slices.SortedFunc(maps.Values(st.Rooms), func(a, b *stats.Room) int { return b.Peak - a.Peak })
		for i, room := range rooms[:min(5, len(rooms))] {
			vals := map[int64]float64{}
			for m, n := range room.Concurrent {
				vals[m] = float64(n)
			}
			d.Concurrent = append(d.Concurrent, series{Name: string(room.App) + "/" + string(room.Room), Color: colors[i],
				Points: polyline(vals, lo, hi)})
		}
	}
	var most uint64 = 1
	for _, n := range st.Leaves {
		most = max(most, n)
	}
	for _, reason := range slices.Sorted(maps.Keys(st.Leaves)) {
		n := st.Leaves[reason]
		d.Leaves = append(d.Leaves, bar{Label: string(reason), Value: n, Width: float64(n) / float64(most) * 400})
	}
	most = 1
	for _, n := range st.Durations {
		most = max(most, n)
	}
	for i, n := range st.Durations {
		label := "more"
		if i < len(stats.DurationBuckets) {
			label = "≤ " + (time.Duration(stats.DurationBuckets[i]) * time.Second).String()
		}
		d.Durations = append(d.Durations, bar{Label: label, Value: n, Width: float64(n) / float64(most) * 400})
	}
	s.mu.Unlock()
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	if err := pageTmpl.Execute(w, d); err != nil {
		http.Error(w, err.Error(), 500)
	}
}

// polyline scales per-minute values into the plot's SVG coordinates.
func polyline(vals map[int64]float64, lo, hi int64) string {
	top := 1.0
	for _, v := range vals {
		top = max(top, v)
	}
	span := float64(max(hi-lo, 1))
	var b strings.Builder
	for _, m := range slices.Sorted(maps.Keys(vals)) {
		x := float64(m-lo) / span * plotW
		y := plotH - vals[m]/top*plotH
		fmt.Fprintf(&b, "%.1f,%.1f ", x, y)
	}
	return b.String()
}

var pageTmpl = template.Must(template.New("page").Parse(`<!doctype html>
<html><head><meta charset="utf-8"><title>roomstats</title>
<style>body{font:14px system-ui,sans-serif;margin:2em;color:#222}svg{background:#fafafa;border:1px solid #ddd}
td{padding:2px 8px}.k{color:#666}</style></head><body>
<h1>roomstats</h1>
<p><span class="k">cursor</span> {{.Cursor}} · <span class="k">room events</span> {{.Events}} ·
<span class="k">rooms kept</span> {{.Rooms}} · <span class="k">streams published</span> {{.Streams}} ·
<span class="k">parked messages</span> {{.Parked}} · <a href="/metrics">metrics</a> · <a href="/stats.json">JSON</a></p>
<p class="k">{{.From}} — {{.To}}</p>
<h2>Messages per minute</h2>
<svg width="640" height="160" viewBox="0 0 640 160">{{range .Messages}}<polyline fill="none" stroke="{{.Color}}" stroke-width="1.5" points="{{.Points}}"/>{{end}}</svg>
<h2>Concurrent users, busiest rooms</h2>
<svg width="640" height="160" viewBox="0 0 640 160">{{range .Concurrent}}<polyline fill="none" stroke="{{.Color}}" stroke-width="1.5" points="{{.Points}}"/>{{end}}</svg>
<p>{{range .Concurrent}}<span style="color:{{.Color}}">■</span> {{.Name}} &nbsp; {{end}}</p>
<h2>Leaves by reason</h2>
<table>{{range .Leaves}}<tr><td>{{.Label}}</td><td><svg width="410" height="14"><rect width="{{.Width}}" height="12" fill="#1f77b4"/></svg></td><td>{{.Value}}</td></tr>{{end}}</table>
<h2>Time in a room</h2>
<table>{{range .Durations}}<tr><td>{{.Label}}</td><td><svg width="410" height="14"><rect width="{{.Width}}" height="12" fill="#2ca02c"/></svg></td><td>{{.Value}}</td></tr>{{end}}</table>
</body></html>
`))
