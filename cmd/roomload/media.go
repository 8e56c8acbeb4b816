package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/roomlog/roomlog/media/mediabench"
)

// mediaBench measures the SFU's forwarding against a bare Pion forwarding
// loop with the same codecs and interceptors on loopback, each forwarder in
// a child process of its own (the publishers and players stay in this one):
// forwarded packets/s, the forwarder's CPU per forwarded packet, forwarded
// packets/s per forwarder core and the forwarder's heap per player, medians
// of rounds that alternate the two.
func mediaBench(ctx context.Context, args []string) error {
	fs := flag.NewFlagSet("media", flag.ExitOnError)
	scenarios := fs.String("scenarios", "1x1,1x10,1x50,1x100,4x10",
		"publishers x players per publisher, comma separated")
	rate := fs.Int("rate", 1000, "packets/s each publisher sends (1,000-byte VP8 packets)")
	dur := fs.Duration("duration", 3*time.Second, "how long each round sends")
	rounds := fs.Int("rounds", 3, "rounds; each runs the bare loop then the SFU, and medians are reported")
	fs.Parse(args)
	header("roomload media")
	fmt.Printf("| publishers × players | offered fwd pkts/s | bare fwd pkts/s | SFU fwd pkts/s | SFU / bare | " +
		"bare fwd CPU µs/pkt | SFU fwd CPU µs/pkt | bare fwd pkts/s per core | SFU fwd pkts/s per core | SFU / bare per core | " +
		"SFU delivered | SFU fwd heap KiB/player |\n")
	fmt.Printf("|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|\n")
	for _, sc := range strings.Split(*scenarios, ",") {
		pubs, players, err := parseScenario(sc)
		if err != nil {
			return err
		}
		var bare, sfu, ratio, bareCPU, sfuCPU, bareCore, sfuCore, coreRatio, deliv, heap []float64
		for range *rounds {
			results := map[bool]mediabench.Result{}
			for _, useSFU := range []bool{false, true} {
				res, err := mediabench.Run(ctx, mediabench.Config{SFU: useSFU, Publishers: pubs, Players: players,
					Duration: *dur, Rate: *rate})
				if err != nil {
					return err
				}
				results[useSFU] = res
				fmt.Fprintf(os.Stderr, "%s sfu=%v: sent %d, forwarded %d in %v (%.0f/s), forwarder CPU %v (%v/pkt, %.0f pkts/core-s), "+
					"publishers+players CPU %v, forwarder heap %.0f B/player\n",
					sc, useSFU, res.Sent, res.Forwarded, res.Elapsed.Round(time.Millisecond), res.PerSecond(),
					res.CPU.Round(time.Millisecond), res.CPUPerPacket(), res.PerCore(), res.LoadCPU.Round(time.Millisecond),
					res.HeapPerPlayer)
			}
			b, s := results[false], results[true]
			bare, sfu, ratio = append(bare, b.PerSecond()), append(sfu, s.PerSecond()), append(ratio, s.PerSecond()/b.PerSecond())
			bareCPU, sfuCPU = append(bareCPU, us(b.CPUPerPacket())), append(sfuCPU, us(s.CPUPerPacket()))
			bareCore, sfuCore = append(bareCore, b.PerCore()), append(sfuCore, s.PerCore())
			coreRatio = append(coreRatio, s.PerCore()/b.PerCore())
			deliv, heap = append(deliv, s.Delivered(players)), append(heap, s.HeapPerPlayer/1024)
		}
		fmt.Printf("| %d × %d | %d | %.0f | %.0f | **%.2f** | %.1f | %.1f | %.0f | %.0f | **%.2f** | %.3f | %.0f |\n",
			pubs, players, pubs*players**rate, median(bare), median(sfu), median(ratio), median(bareCPU), median(sfuCPU),
			median(bareCore), median(sfuCore), median(coreRatio), median(deliv), median(heap))
	}
	return nil
}

func us(d time.Duration) float64 { return float64(d.Nanoseconds()) / 1000 }

func parseScenario(s string) (pubs, players int, err error) {
	a, b, ok := strings.Cut(strings.TrimSpace(s), "x")
	if ok {
		pubs, err = strconv.Atoi(a)
		if err == nil {
			players, err = strconv.Atoi(b)
		}
	}
	if !ok || err != nil || pubs < 1 || players < 1 {
		return 0, 0, fmt.Errorf("scenario %q: want PUBLISHERSxPLAYERS", s)
	}
	return pubs, players, nil
}
