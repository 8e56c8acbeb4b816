package client_test

import (
	"context"
	"errors"
	"log"

	"github.com/roomlog/roomlog/domain"
	"github.com/roomlog/roomlog/transport/client"
)

// A ZEGO-style app: log in, follow the room, publish, send a message.
func Example() {
	ctx := context.Background()
	var c *client.Client
	c, err := client.Dial(ctx, "ws://127.0.0.1:7070/ws", client.Options{Handlers: client.Handlers{
		OnRoomStateChanged: func(room string, state client.RoomState, code domain.Code, info client.StateInfo) {
			log.Printf("%s: %s (%d, %s)", room, state, code, info.Reason)
		},
		OnRoomUserUpdate: func(room string, typ client.UpdateType, users []client.User) {
			log.Printf("%s: users %s %v", room, typ, users)
		},
		OnIMRecvBroadcastMessage: func(room string, msgs []client.Message) {
			for _, m := range msgs {
				log.Printf("%s: %s says %q", room, m.From.ID, m.Message)
			}
		},
		OnRoomTokenWillExpire: func(int) {
			// Callbacks may call the client: fetch a new token from the
			// app server, then c.RenewToken(ctx, token).
		},
	}})
	if err != nil {
		log.Fatal(err)
	}
	defer c.Close() // not a logout: LogoutAllRooms first to leave at once

	_, err = c.LoginRoom(ctx, "room-1", client.User{ID: "alice", Name: "Alice"}, client.LoginOptions{Token: "..."})
	if errors.Is(err, domain.ErrTokenInvalid) {
		log.Fatal("ask the app server for a new token")
	} else if err != nil {
		log.Fatal(err)
	}
	if _, err := c.StartPublishingStream(ctx, "alice-cam", client.PublishOptions{}); err != nil {
		log.Fatal(err)
	}
	if _, err := c.SendBroadcastMessage(ctx, "room-1", "hello"); err != nil {
		log.Fatal(err)
	}
}

// A ZIM-style live room: join with the last messages, take a seat with an
// attribute that leaves with its owner, and claim a slot with compare-and-set.
func ExampleClient_BeginRoomAttributesBatch() {
	ctx := context.Background()
	c, err := client.Dial(ctx, "ws://127.0.0.1:7070/ws", client.Options{Handlers: client.Handlers{
		OnRoomAttributesBatchUpdated: func(room string, set map[string]string, deleted []string) {
			log.Printf("%s: seats now %v (gone: %v)", room, set, deleted)
		},
	}})
	if err != nil {
		log.Fatal(err)
	}
	defer c.Close()
	snap, err := c.LoginRoom(ctx, "live-1", client.User{ID: "bob"}, client.LoginOptions{Token: "...", History: 20})
	if err != nil {
		log.Fatal(err)
	}
	for _, m := range snap.Messages { // newest first, up to the snapshot
		log.Printf("%s: %s", m.From.ID, m.Message)
	}
	// Take seat 2 and leave seat 1, as one update; the seat goes with bob.
	b := c.BeginRoomAttributesBatch("live-1", client.AttributeOptions{DeleteAfterOwnerLeft: true})
	if _, err := b.Set(map[string]string{"seat-2": "bob"}).Delete("seat-1").End(ctx); errors.Is(err, domain.ErrAttributeOwned) {
		log.Printf("taken: %v", client.ErrorKeys(err))
	}
	// Set the topic only if nobody has (version 0: the key must not exist).
	if _, err := c.SetRoomExtraInfoIf(ctx, "live-1", "topic", "q&a", 0); err != nil {
		if cur, ok := client.VersionConflict(err); ok {
			log.Printf("the topic is already %q (version %d)", cur[0].Value, cur[0].Version)
		}
	}
}
