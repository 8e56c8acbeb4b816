// Package media is where roomlog's Pion WebRTC SFU nodes will live: they
// consume stream events (published, stopped, member left) from the log to
// decide which media to forward to whom, and write room state only through
// commands. None of it is built yet; no issue so far has asked for it, and
// nothing in roomd depends on it. The folder exists so that the house's
// fixed layout is whole on a fresh clone.
package media
