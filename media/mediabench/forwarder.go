package mediabench

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"runtime"
	"syscall"
	"time"

	"github.com/pion/webrtc/v4"

	"github.com/roomlog/roomlog/domain"
	"github.com/roomlog/roomlog/media"
	"github.com/roomlog/roomlog/media/mediatest"
	"github.com/roomlog/roomlog/projections"
)

// EnvForwarder, set in a process's environment, makes it a run's forwarder:
// Run re-executes its own binary with it set to "bare" or "sfu", so that the
// forwarder's CPU and heap are measured apart from the publishers' and
// players'. A binary that calls Run must therefore call ServeForwarder first
// thing in main (or TestMain) when Forwarding reports true.
const EnvForwarder = "ROOMLOG_MEDIABENCH_FORWARDER"

// Forwarding reports whether this process was started as a run's forwarder.
func Forwarding() bool { return os.Getenv(EnvForwarder) != "" }

// ServeForwarder is a forwarder process's main: it forwards, in the mode
// EnvForwarder names, the streams that the requests on stdin set up and
// answers each on stdout, until stdin closes. Its peer connections end with
// the process.
func ServeForwarder(ctx context.Context) error {
	mode := os.Getenv(EnvForwarder)
	if mode != "bare" && mode != "sfu" {
		return fmt.Errorf("mediabench: %s=%q, want bare or sfu", EnvForwarder, mode)
	}
	return serve(ctx, mode == "sfu", os.Stdin, os.Stdout)
}

// request is one line from the measuring process to the forwarder: a
// signal to answer, or a reading of the forwarder's CPU or heap.
type request struct {
	Op     string       `json:"op"` // "signal", "cpu" or "heap"
	Signal media.Signal `json:"signal,omitzero"`
}

type reply struct {
	SDP string `json:"sdp,omitempty"`
	// CPU is the forwarder process's user and system time so far.
	CPU time.Duration `json:"cpu,omitempty"`
	// Heap is its live heap after a collection, in bytes.
	Heap  uint64 `json:"heap,omitempty"`
	Error string `json:"error,omitempty"`
}

// forwarder is the forwarder process's state: the SFU, with the live
// projection its authorization reads and the fold that feeds it, or the
// bare loop's peers and tracks.
type forwarder struct {
	api *webrtc.API

	sfu  *media.SFU
	live *projections.Live
	fold fold

	tracks map[domain.StreamID]*webrtc.TrackLocalStaticRTP
}

func serve(ctx context.Context, useSFU bool, r io.Reader, w io.Writer) error {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	fw := &forwarder{api: mediatest.API(), tracks: map[domain.StreamID]*webrtc.TrackLocalStaticRTP{}}
	if useSFU {
		fw.live = projections.NewLive(projections.NewModel())
		var err error
		if fw.sfu, err = media.New(media.Config{Live: fw.live, Node: "bench", SweepInterval: time.Hour,
			MaxPeersPerSession: 1 << 20}); err != nil {
			return err
		}
		go fw.sfu.Run(ctx)
	}
	dec, bw := json.NewDecoder(r), bufio.NewWriter(w)
	enc := json.NewEncoder(bw)
	for {
		var req request
		if err := dec.Decode(&req); errors.Is(err, io.EOF) {
			return nil
		} else if err != nil {
			return err
		}
		var rep reply
		var err error
		switch req.Op {
		case "signal":
			rep.SDP, err = fw.signal(ctx, req.Signal)
		case "cpu":
			rep.CPU = cpuTime()
		case "heap":
			runtime.GC()
			var ms runtime.MemStats
			runtime.ReadMemStats(&ms)
			rep.Heap = ms.HeapAlloc
		default:
			err = fmt.Errorf("unknown op %q", req.Op)
		}
		if err != nil {
			rep.Error = err.Error()
		}
		if err := enc.Encode(rep); err != nil {
			return err
		}
		if err := bw.Flush(); err != nil {
			return err
		}
	}
}

// signal answers a publisher's or player's offer: the SFU authorizes it
// against the fold (which this process feeds the events that make the
// session a publisher or player, as the engine would append them); the bare
// loop receives a publisher's track into one TrackLocalStaticRTP that every
// player's peer connection sends.
func (fw *forwarder) signal(ctx context.Context, sig media.Signal) (string, error) {
	if fw.sfu != nil {
		fw.fold.join(fw.live, "room", sig.Session)
		switch sig.Kind {
		case media.Publish:
			fw.fold.publish(fw.live, "room", sig.Session, sig.Stream)
		case media.Play:
			fw.fold.play(fw.live, "room", sig.Session, sig.Stream)
		}
		a, err := fw.sfu.Handle(ctx, sig)
		return a.SDP, err
	}
	pc, err := fw.api.NewPeerConnection(webrtc.Configuration{})
	if err != nil {
		return "", err
	}
	switch sig.Kind {
	case media.Publish:
		out, err := webrtc.NewTrackLocalStaticRTP(webrtc.RTPCodecCapability{MimeType: webrtc.MimeTypeVP8,
			ClockRate: 90000}, "video", string(sig.Stream))
		if err != nil {
			return "", err
		}
		fw.tracks[sig.Stream] = out
		pc.OnTrack(func(r *webrtc.TrackRemote, _ *webrtc.RTPReceiver) {
			buf := make([]byte, 1500)
			for {
				n, _, err := r.Read(buf)
				if err != nil {
					return
				}
				_, _ = out.Write(buf[:n])
			}
		})
	case media.Play:
		out := fw.tracks[sig.Stream]
		if out == nil {
			return "", fmt.Errorf("play of %q before its publish", sig.Stream)
		}
		s, err := pc.AddTrack(out)
		if err != nil {
			return "", err
		}
		go drain(s)
	}
	if err := pc.SetRemoteDescription(webrtc.SessionDescription{Type: webrtc.SDPTypeOffer, SDP: sig.SDP}); err != nil {
		return "", err
	}
	a, err := pc.CreateAnswer(nil)
	if err != nil {
		return "", err
	}
	g := webrtc.GatheringCompletePromise(pc)
	if err := pc.SetLocalDescription(a); err != nil {
		return "", err
	}
	<-g
	return pc.LocalDescription().SDP, nil
}

// child is the measuring process's end of a forwarder process.
type child struct {
	cmd   *exec.Cmd
	stdin io.WriteCloser
	enc   *json.Encoder
	dec   *json.Decoder
}

// startChild re-executes this binary as a forwarder in the given mode.
func startChild(ctx context.Context, useSFU bool) (*child, error) {
	if Forwarding() {
		// A binary that does not call ServeForwarder would otherwise
		// start forwarders without end.
		return nil, errors.New("mediabench: Run in a forwarder process (its main must call ServeForwarder)")
	}
	exe, err := os.Executable()
	if err != nil {
		return nil, err
	}
	mode := "bare"
	if useSFU {
		mode = "sfu"
	}
	cmd := exec.CommandContext(ctx, exe)
	cmd.Env = append(os.Environ(), EnvForwarder+"="+mode)
	cmd.Stderr = os.Stderr
	cmd.WaitDelay = 5 * time.Second
	stdin, err := cmd.StdinPipe()
	if err != nil {
		return nil, err
	}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		return nil, err
	}
	if err := cmd.Start(); err != nil {
		return nil, err
	}
	return &child{cmd: cmd, stdin: stdin, enc: json.NewEncoder(stdin), dec: json.NewDecoder(stdout)}, nil
}

func (c *child) call(req request) (reply, error) {
	var rep reply
	if err := c.enc.Encode(req); err != nil {
		return rep, fmt.Errorf("mediabench: forwarder process: %w", err)
	}
	if err := c.dec.Decode(&rep); err != nil {
		return rep, fmt.Errorf("mediabench: forwarder process did not answer %s (does its main call ServeForwarder?): %w",
			req.Op, err)
	}
	if rep.Error != "" {
		return rep, fmt.Errorf("mediabench: forwarder: %s", rep.Error)
	}
	return rep, nil
}

func (c *child) cpu() (time.Duration, error) {
	rep, err := c.call(request{Op: "cpu"})
	return rep.CPU, err
}

func (c *child) heap() (uint64, error) {
	rep, err := c.call(request{Op: "heap"})
	return rep.Heap, err
}

// close ends the forwarder process (closing its stdin) and waits for it.
func (c *child) close() {
	c.stdin.Close()
	c.cmd.Wait()
}

func cpuTime() time.Duration {
	var ru syscall.Rusage
	if syscall.Getrusage(syscall.RUSAGE_SELF, &ru) != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// fold feeds a live projection the events that make sessions publishers
// and players, as the engine would append them.
type fold struct {
	seq  uint64
	aggs map[domain.Key]uint64
}

func (f *fold) apply(live *projections.Live, k domain.Key, ps ...domain.Payload) {
	if f.aggs == nil {
		f.aggs = map[domain.Key]uint64{}
	}
	var evs []domain.Event
	for _, p := range ps {
		f.aggs[k]++
		evs = append(evs, domain.Event{Type: p.EventType(), App: k.App, Aggregate: k.Kind, AggregateID: k.ID,
			Seq: f.aggs[k], Time: time.Now(), Data: p})
	}
	f.seq++
	live.Apply(projections.Record{Seq: f.seq, Events: evs})
}

func (f *fold) join(live *projections.Live, room domain.RoomID, sid domain.SessionID) {
	u := domain.UserID(sid)
	f.apply(live, domain.SessionKey(app, sid), &domain.SessionOpenedData{User: u, Mode: domain.MultiRoom},
		&domain.RoomClaimedData{Room: room})
	rk := domain.RoomKey(app, room)
	if f.aggs[rk] == 0 {
		f.apply(live, rk, &domain.RoomCreatedData{Session: sid, By: u})
	}
	f.apply(live, rk, &domain.MemberJoinedData{User: u, Session: sid, Role: domain.Anchor, CanPublish: true})
}

func (f *fold) publish(live *projections.Live, room domain.RoomID, sid domain.SessionID, st domain.StreamID) {
	u := domain.UserID(sid)
	f.apply(live, domain.StreamKey(app, st), &domain.StreamClaimedData{Room: room, User: u, Session: sid})
	f.apply(live, domain.RoomKey(app, room), &domain.StreamPublishedData{Stream: st, User: u, Session: sid, Node: "bench"})
}

func (f *fold) play(live *projections.Live, room domain.RoomID, sid domain.SessionID, st domain.StreamID) {
	f.apply(live, domain.RoomKey(app, room), &domain.PlayStartedData{Stream: st, User: domain.UserID(sid), Session: sid})
}
