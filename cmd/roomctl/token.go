package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"strings"
	"time"

	"github.com/roomlog/roomlog/domain"
	"github.com/roomlog/roomlog/transport/auth"
)

const tokenUsage = `usage: roomctl token -app A -user U [-name N] [-rooms R1,R2] [-publish=false] [-ttl D]
       roomctl token -admin [-subject S] [-ttl D]

Mints a client token, or with -admin an admin token for the admin API, signed
with the server's secret ($ROOMLOG_SECRET, or -secret: the exact string roomd
uses), and prints only the token: TOKEN=$(roomctl token ...).

flags:
`

// token mints a client or an admin token and prints only the token, so that
// scripts can write TOKEN=$(roomctl token ...).
//
// The secret is the exact string given, as bytes (no hex or base64 decoding),
// the same convention as roomd's -secret / ROOMLOG_SECRET. The environment
// variable is the better place for it: a -secret flag shows in ps and in the
// shell history.
func token(_ context.Context, args []string, out, _ io.Writer) error {
	fs := flag.NewFlagSet("token", flag.ContinueOnError)
	withUsage(fs, tokenUsage)
	secret := fs.String("secret", "", "the server's secret, as the exact string roomd uses (default $"+auth.SecretEnv+")")
	admin := fs.Bool("admin", false, "mint an admin token (for the admin API) instead of a client token")
	subject := fs.String("subject", "admin", "admin token: who it is for, as the audit trail will name it")
	app := fs.String("app", "", "client token: app ID (required)")
	user := fs.String("user", "", "client token: user ID (required)")
	name := fs.String("name", "", "client token: user name")
	rooms := fs.String("rooms", auth.AllRooms, `client token: comma-separated room IDs, or "*" for every room`)
	publish := fs.Bool("publish", true, "client token: the user may publish streams")
	ttl := fs.Duration("ttl", 0, "how long the token is valid, at most 87600h (10 years) (default 24h for a client token, 1h for an admin token)")
	if err := parseFlags(fs, args, out); err != nil {
		return err
	}
	set := map[string]bool{}
	fs.Visit(func(f *flag.Flag) { set[f.Name] = true })

	if *ttl > auth.MaxTTL {
		// As POST /admin/v1/apps/{app}/tokens refuses ttl_seconds over 315360000.
		return exitError{2, fmt.Sprintf("token: -ttl %v is over 10 years (%v), the longest a token may be valid", *ttl, auth.MaxTTL)}
	}
	key := *secret
	if !set["secret"] {
		key = os.Getenv(auth.SecretEnv)
	}
	if key == "" {
		return exitError{2, "token: no secret: set " + auth.SecretEnv + " or pass -secret (the same string roomd uses)"}
	}
	signer, err := auth.NewSigner(auth.Config{Secret: []byte(key)})
	if errors.Is(err, auth.ErrSecretTooShort) {
		return exitError{2, "token: " + err.Error()}
	}
	if err != nil {
		return err
	}

	var tok string
	if *admin {
		// Client flags with -admin mean the operator meant something else;
		// refusing beats printing a token that does not do what they think.
		for _, f := range []string{"app", "user", "name", "rooms", "publish"} {
			if set[f] {
				return exitError{2, fmt.Sprintf("token: -%s is for client tokens, not with -admin", f)}
			}
		}
		if !set["ttl"] {
			*ttl = time.Hour
		}
		tok, err = signer.MintAdmin(*subject, *ttl)
	} else {
		if set["subject"] {
			return exitError{2, "token: -subject is for admin tokens; add -admin"}
		}
		if *app == "" || *user == "" {
			return exitError{2, "token: a client token needs -app and -user (or use -admin)"}
		}
		if !set["ttl"] {
			*ttl = 24 * time.Hour
		}
		c := auth.Claims{App: *app, User: *user, Name: *name, Publish: *publish, ExpiresAt: time.Now().Add(*ttl)}
		if *rooms == auth.AllRooms {
			c.AllRooms = true
		} else {
			// Room IDs may hold spaces, dots or "*": split on commas only, trim nothing.
			c.Rooms = strings.Split(*rooms, ",")
		}
		tok, err = signer.Mint(c)
	}
	var bad *domain.Error
	if errors.Is(err, domain.ErrInvalidArgument) && errors.As(err, &bad) {
		return exitError{2, "token: " + bad.Detail}
	}
	if err != nil {
		return err
	}
	_, err = fmt.Fprintln(out, tok)
	return err
}
