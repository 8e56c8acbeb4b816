package client

import (
	"context"
	"encoding/json"
	"fmt"
	"maps"

	"github.com/roomlog/roomlog/domain"
	"github.com/roomlog/roomlog/transport/protocol"
)

// The room state beyond members and messages: owned room attributes and
// their batches, compare-and-set, member attributes, message history and
// paged member queries.

// Types of the room state operations.
type (
	HistoryMessage         = protocol.HistoryMessage
	HistoryPage            = protocol.HistoryReply
	RoomAttribute          = protocol.RoomAttribute
	RoomAttributes         = protocol.RoomAttributesReply
	MemberAttributes       = protocol.MemberAttributes
	MemberAttributesPage   = protocol.MemberAttributesPage
	MemberAttributesChange = protocol.MemberAttributesChange
	// Current is one key's current value and version in a version conflict.
	Current = domain.Current
)

// AttributeOptions are ZIM's ZIMRoomAttributesSetConfig and
// ZIMRoomAttributesDeleteConfig, plus a compare-and-set.
type AttributeOptions struct {
	// Force (isForce) writes and deletes keys other members own.
	Force bool
	// DeleteAfterOwnerLeft (isDeleteAfterOwnerLeft): the keys set go when
	// their owner leaves the room.
	DeleteAfterOwnerLeft bool
	// UpdateOwner (isUpdateOwner): the writer becomes the owner of the
	// existing keys it sets.
	UpdateOwner bool
	// Expect maps keys to the version the write is based on (0: the key
	// must not exist). If any changed, nothing is written and the error
	// matches domain.ErrVersionConflict (see VersionConflict).
	Expect map[string]uint64
}

// WriteResult is what an attribute or extra info write did.
type WriteResult struct {
	// Version is the room seq the write was stored at: the new version of
	// the keys it set (0 when it changed nothing).
	Version uint64
	// ErrorKeys are the keys a plain (not batch) write skipped because
	// another member owns them (ZIM errorKeys).
	ErrorKeys []string
}

// SetRoomAttributesWith sets room attributes with ZIM's options (ZIM
// setRoomAttributes with a config). Keys another member owns are skipped
// without Force and listed in ErrorKeys; if no key could be written the call
// fails with 1902010. Members get OnRoomAttributesUpdated.
func (c *Client) SetRoomAttributesWith(ctx context.Context, room string, attrs map[string]string, opts AttributeOptions) (WriteResult, error) {
	return c.write(ctx, protocol.OpSetRoomAttributes, attributesRequest(room, attrs, nil, opts))
}

// DeleteRoomAttributesWith deletes room attributes with ZIM's options (ZIM
// deleteRoomAttributes with a config), as SetRoomAttributesWith.
func (c *Client) DeleteRoomAttributesWith(ctx context.Context, room string, keys []string, opts AttributeOptions) (WriteResult, error) {
	return c.write(ctx, protocol.OpDeleteRoomAttributes, attributesRequest(room, nil, keys, opts))
}

func attributesRequest(room string, set map[string]string, del []string, opts AttributeOptions) protocol.RoomAttributesRequest {
	return protocol.RoomAttributesRequest{Room: room, Attributes: set, Keys: del, Force: opts.Force,
		DeleteAfterOwnerLeft: opts.DeleteAfterOwnerLeft, UpdateOwner: opts.UpdateOwner, Expect: opts.Expect}
}

// AttributesBatch collects room attribute writes that End sends as one
// (ZIM beginRoomAttributesBatchOperation / endRoomAttributesBatchOperation).
type AttributesBatch struct {
	c    *Client
	room string
	opts AttributeOptions
	set  map[string]string
	del  []string
}

// BeginRoomAttributesBatch starts a batch of room attribute writes; opts
// apply to all of them.
func (c *Client) BeginRoomAttributesBatch(room string, opts AttributeOptions) *AttributesBatch {
	return &AttributesBatch{c: c, room: room, opts: opts, set: map[string]string{}}
}

// Set adds keys to set.
func (b *AttributesBatch) Set(attrs map[string]string) *AttributesBatch {
	maps.Copy(b.set, attrs)
	return b
}

// Delete adds keys to delete.
func (b *AttributesBatch) Delete(keys ...string) *AttributesBatch {
	b.del = append(b.del, keys...)
	return b
}

// End sends the batch: every key is written or none (1902010 if one is
// another member's and Force is not set), as one update that other members
// get with OnRoomAttributesBatchUpdated.
func (b *AttributesBatch) End(ctx context.Context) (WriteResult, error) {
	set := b.set
	if len(set) == 0 {
		set = nil
	}
	return b.c.write(ctx, protocol.OpRoomAttributesBatch, attributesRequest(b.room, set, b.del, b.opts))
}

// SetRoomExtraInfoIf sets one room extra info key only if it is still at
// version (0: only if it does not exist), and returns its new version (still
// version if the key already had that value: nothing was written). A
// changed key fails with 1905005 (see VersionConflict).
func (c *Client) SetRoomExtraInfoIf(ctx context.Context, room, key, value string, version uint64) (uint64, error) {
	res, err := c.write(ctx, protocol.OpSetRoomExtraInfo, protocol.RoomExtraInfoRequest{Room: room, Key: key,
		Value: value, Expect: &version})
	if err == nil && res.Version == 0 {
		return version, nil
	}
	return res.Version, err
}

func (c *Client) write(ctx context.Context, op protocol.Op, req any) (WriteResult, error) {
	var rep protocol.WriteReply
	if err := c.query(ctx, op, req, &rep); err != nil {
		return WriteResult{}, err
	}
	return WriteResult{Version: rep.Version, ErrorKeys: rep.ErrorKeys}, nil
}

// VersionConflict returns the current values and versions that a write
// refused with 1905005 was based on stale versions of.
func VersionConflict(err error) ([]Current, bool) {
	var e *Error
	if !errorAs(err, &e) || e.Code != domain.ErrVersionConflict.Code {
		return nil, false
	}
	var d domain.VersionConflict
	if json.Unmarshal(e.Data, &d) != nil {
		return nil, false
	}
	return d.Current, true
}

// ErrorKeys returns the keys another member owns that made a write fail
// with 1902010.
func ErrorKeys(err error) []string {
	var e *Error
	if !errorAs(err, &e) || e.Code != domain.ErrAttributeOwned.Code {
		return nil
	}
	var d domain.Partial
	json.Unmarshal(e.Data, &d)
	return d.Keys
}

// QueryRoomAllAttributes returns every room attribute with its owner and
// version (ZIM queryRoomAllAttributes).
func (c *Client) QueryRoomAllAttributes(ctx context.Context, room string) (*RoomAttributes, error) {
	var rep RoomAttributes
	return &rep, c.query(ctx, protocol.OpQueryRoomAttributes, protocol.RoomRequest{Room: room}, &rep)
}

// SetRoomMembersAttributes sets (attrs) and deletes (del) attributes of
// members of the room (ZIM setRoomMembersAttributes) and returns the users
// it left out because they are not in the room (ZIM errorUserList). Members
// get OnRoomMemberAttributesUpdated; the attributes go when their member
// leaves.
func (c *Client) SetRoomMembersAttributes(ctx context.Context, room string, users []string, attrs map[string]string,
	del []string) ([]string, error) {
	var rep protocol.MemberAttributesReply
	err := c.query(ctx, protocol.OpSetMemberAttributes, protocol.MemberAttributesRequest{Room: room, Users: users,
		Attributes: attrs, Keys: del}, &rep)
	return rep.ErrorUsers, err
}

// QueryRoomMembersAttributes returns the attributes of the listed members
// (ZIM queryRoomMembersAttributes).
func (c *Client) QueryRoomMembersAttributes(ctx context.Context, room string, users []string) ([]MemberAttributes, error) {
	var rep MemberAttributesPage
	err := c.query(ctx, protocol.OpQueryMemberAttributes, protocol.MemberAttributesQuery{Room: room, Users: users}, &rep)
	return rep.Members, err
}

// QueryRoomMemberAttributesList pages through the members that have
// attributes (ZIM queryRoomMemberAttributesList): pass the last page's
// NextFlag; an empty one ends the list.
func (c *Client) QueryRoomMemberAttributesList(ctx context.Context, room, nextFlag string, count int) (*MemberAttributesPage, error) {
	var rep MemberAttributesPage
	return &rep, c.query(ctx, protocol.OpQueryMemberAttributes, protocol.MemberAttributesQuery{Room: room,
		NextFlag: nextFlag, Count: count}, &rep)
}

// QueryRoomMemberList returns a page of the room's members ordered by user
// ID (ZIM queryRoomMemberList) and the flag of the next page ("" at the end).
func (c *Client) QueryRoomMemberList(ctx context.Context, room, nextFlag string, count int) ([]User, string, error) {
	var rep protocol.MemberListReply
	err := c.query(ctx, protocol.OpQueryMemberList, protocol.MemberListRequest{Room: room, NextFlag: nextFlag, Count: count}, &rep)
	return rep.Users, rep.NextFlag, err
}

// QueryRoomOnlineMemberCount returns the room's member count (ZIM
// queryRoomOnlineMemberCount).
func (c *Client) QueryRoomOnlineMemberCount(ctx context.Context, room string) (int, error) {
	var rep protocol.OnlineUserCount
	err := c.query(ctx, protocol.OpQueryOnlineCount, protocol.RoomRequest{Room: room}, &rep)
	return rep.Count, err
}

// QueryHistoryMessage returns a page of the room's messages, newest first
// (ZIM queryHistoryMessage): its broadcasts and the custom commands to
// everyone or to this user. Pass 0 for the newest page, then the last
// page's Next; Next is 0 on the oldest page.
func (c *Client) QueryHistoryMessage(ctx context.Context, room string, before uint64, count int) (*HistoryPage, error) {
	var rep HistoryPage
	return &rep, c.query(ctx, protocol.OpQueryHistory, protocol.HistoryRequest{Room: room, Before: before, Count: count}, &rep)
}

// query runs op and decodes its reply's data into out.
func (c *Client) query(ctx context.Context, op protocol.Op, req, out any) error {
	data, err := c.do(ctx, op, req, nil)
	if err != nil {
		return err
	}
	if len(data) > 0 {
		if err := json.Unmarshal(data, out); err != nil {
			return fmt.Errorf("roomlog: %s: %w", op, err)
		}
	}
	return nil
}
