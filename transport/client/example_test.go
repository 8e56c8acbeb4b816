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
