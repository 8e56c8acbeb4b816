// Type declarations of roomlog.js, roomlog's browser SDK. `tsc --noEmit`
// checks them in CI (package.json at the repository root); docs/sdk-js.md
// documents the module.

/** ZEGO's room state change reasons (ZegoRoomStateChangedReason). */
export declare const RoomStateChangedReason: {
  readonly Logining: 'LOGINING';
  readonly Logined: 'LOGINED';
  readonly LoginFailed: 'LOGIN_FAILED';
  readonly Reconnecting: 'RECONNECTING';
  readonly Reconnected: 'RECONNECTED';
  readonly ReconnectFailed: 'RECONNECT_FAILED';
  readonly KickOut: 'KICKOUT';
  readonly Logout: 'LOGOUT';
  readonly LogoutFailed: 'LOGOUT_FAILED';
};
export type RoomStateChangedReason = (typeof RoomStateChangedReason)[keyof typeof RoomStateChangedReason];

/** The codes the SDK itself reports: [code, name, message]. */
export declare const ErrorCodes: {
  readonly CLIENT_CLOSED: readonly [1906090, 'client_closed', string];
  readonly CONNECT_FAILED: readonly [1906091, 'connect_failed', string];
  readonly PROTOCOL_MISMATCH: readonly [1906092, 'protocol_mismatch', string];
  readonly MEDIA_FAILED: readonly [1906093, 'media_failed', string];
  readonly RECONNECTING: readonly [1002051, 'reconnecting', string];
  readonly TIMEOUT: readonly [1002053, 'timeout', string];
  readonly INVALID_ARGUMENT: readonly [1906001, 'invalid_argument', string];
  readonly SESSION_REPLACED: readonly [1906009, 'session_replaced', string];
};

/** Every failure: a refusal of the server or an error of the SDK. */
export declare class RoomlogError extends Error {
  constructor(code: number, name: string, message: string, op?: string);
  /** The numeric code of docs/protocol.md (1002033, 1906090, ...). */
  readonly code: number;
  /** The code's stable name (token_invalid, client_closed, ...). */
  readonly name: string;
  /** The protocol operation that failed ('' if none). */
  op: string;
  /** True when the SDK made the error up (timeout, lost connection) rather than the server. */
  readonly local: boolean;
  /** What the server's error reply carried, if anything: `error_keys` of a refused attribute write (1902010), ... */
  readonly data?: Record<string, unknown>;
  /** ZEGO's name for code. */
  readonly errorCode: number;
}

export interface ZegoUser {
  userID: string;
  userName?: string;
  /** 'anchor' or 'audience', in user lists. */
  role?: 'anchor' | 'audience';
}

export interface ZegoStreamList {
  streamID: string;
  user: ZegoUser;
  extraInfo: string;
}

export interface ZegoRoomExtraInfo {
  key: string;
  value: string;
  updateUser: ZegoUser;
  /** Unix milliseconds. */
  updateTime: number;
}

export interface ZegoBroadcastMessageInfo {
  messageID: string;
  fromUser: ZegoUser;
  message: string;
  /** Unix milliseconds. */
  sendTime: number;
}
export type ZegoBarrageMessageInfo = ZegoBroadcastMessageInfo;

/** What a room state change carries besides the reason and the code. */
export interface RoomStateExtendedData {
  /** Why: logout, leave, switch, kicked_by_backend, room_destroyed, connection_lost, resumed, relogin_failed, not_resumed, ... */
  reason: string;
  /** ZIM's view: Connecting, Connected, Disconnected. */
  zimState: string;
  /** ZIM's event: Success, KickedOut, RoomNotExist, NetworkInterrupted, ... */
  zimEvent: string;
  /** For a duplicate-login kick, the session that caused it. */
  bySession: string;
}

export type ZegoUpdateType = 'ADD' | 'DELETE';

export interface ZegoPublisherState {
  streamID: string;
  state: 'NO_PUBLISH' | 'PUBLISH_REQUESTING' | 'PUBLISHING';
  errorCode: number;
  extendedData: string;
}

export interface ZegoPlayerState {
  streamID: string;
  state: 'NO_PLAY' | 'PLAY_REQUESTING' | 'PLAYING';
  errorCode: number;
  extendedData: string;
}

export interface ZIMRoomInfo {
  roomID: string;
  roomName?: string;
}

export interface ZIMRoomAdvancedConfig {
  roomAttributes?: Record<string, string>;
  /** Seconds, at most 10800. */
  roomDestroyDelayTime?: number;
}

export interface ZIMRoomFullInfo {
  baseInfo: { roomID: string; roomName: string };
}

export interface ZIMRoomMemberAttributesUpdateInfo {
  /** attributes: the keys set, with their values; deletedKeys: the keys deleted (roomlog's). */
  attributesInfo: { userID: string; attributes: Record<string, string>; deletedKeys: string[] };
}

export interface ZIMRoomAttributesUpdateInfo {
  action: 'Set' | 'Delete';
  roomAttributes: Record<string, string>;
}

/** A room's current state (queryRoom). */
export interface RoomSnapshot {
  roomID: string;
  roomName: string;
  /** The room's event sequence the snapshot is at. */
  seq: number;
  userList: ZegoUser[];
  streamList: ZegoStreamList[];
  extraInfoList: ZegoRoomExtraInfo[];
  roomAttributes: Record<string, string>;
  onlineCount: number;
}

/** The events of RoomlogEngine.on, with their callbacks. */
export interface RoomlogEvents {
  roomStateChanged: (roomID: string, reason: RoomStateChangedReason, errorCode: number, extendedData: RoomStateExtendedData) => void;
  roomUserUpdate: (roomID: string, updateType: ZegoUpdateType, userList: ZegoUser[]) => void;
  roomStreamUpdate: (roomID: string, updateType: ZegoUpdateType, streamList: ZegoStreamList[], extendedData: string) => void;
  roomStreamExtraInfoUpdate: (roomID: string, streamList: ZegoStreamList[]) => void;
  IMRecvBroadcastMessage: (roomID: string, chatData: ZegoBroadcastMessageInfo[]) => void;
  IMRecvBarrageMessage: (roomID: string, chatData: ZegoBarrageMessageInfo[]) => void;
  IMRecvCustomCommand: (roomID: string, fromUser: ZegoUser, command: string) => void;
  roomExtraInfoUpdate: (roomID: string, roomExtraInfoList: ZegoRoomExtraInfo[]) => void;
  roomOnlineUserCountUpdate: (roomID: string, count: number) => void;
  /** Once per room the session is in or entering, or once with roomID '' if none; call renewToken once. */
  tokenWillExpire: (roomID: string, remainSeconds: number) => void;
  publisherStateUpdate: (result: ZegoPublisherState) => void;
  playerStateUpdate: (result: ZegoPlayerState) => void;
  /** ZIM's, with ZIM's (zim, data) signature. */
  roomMemberJoined: (zim: RoomlogEngine, data: { roomID: string; memberList: ZegoUser[] }) => void;
  roomMemberLeft: (zim: RoomlogEngine, data: { roomID: string; memberList: ZegoUser[] }) => void;
  roomAttributesUpdated: (zim: RoomlogEngine, data: { roomID: string; infos: ZIMRoomAttributesUpdateInfo[] }) => void;
  /** A ZIM batch of attribute changes (beginRoomAttributesBatchOperation), as one update. */
  roomAttributesBatchUpdated: (zim: RoomlogEngine, data: { roomID: string; infos: ZIMRoomAttributesUpdateInfo[] }) => void;
  /** Members' attributes changed (ZIM setRoomMembersAttributes): per member, the keys set and the keys deleted. */
  roomMemberAttributesUpdated: (zim: RoomlogEngine, data: { roomID: string; infos: ZIMRoomMemberAttributesUpdateInfo[]; operatedInfo: { userID: string; userName: string } }) => void;
  /** roomlog's: an event did not follow the last one received for its room (never, against a correct server). */
  roomEventGap: (roomID: string, expectedPrev: number, gotPrev: number) => void;
  /** roomlog's: the server is about to close the connection, and why. */
  sessionClosing: (code: number, name: string, message: string) => void;
}

export interface RoomlogOptions {
  /** Bounds one connection attempt, milliseconds (default 10000). */
  dialTimeout?: number;
  /** Bounds every request, waiting for a connection included (default 15000). */
  requestTimeout?: number;
  /** How long to try to reconnect before RECONNECT_FAILED (default 1200000, 20 minutes). */
  reconnectWindow?: number;
  /** Bounds of the delay between reconnection attempts (defaults 250 and 10000). */
  backoffMin?: number;
  backoffMax?: number;
  /** 'debug', 'info', 'warn' (default), 'error' or 'none'. */
  logLevel?: 'debug' | 'info' | 'warn' | 'error' | 'none';
  /** ICE servers for the media connections (default none: same host). */
  iceServers?: RTCIceServer[];
}

export interface LoginConfig {
  /**
   * ZEGO's isUserStatusNotify: false, and the room sends this session no
   * other users' roomUserUpdate (nor ZIM's roomMemberJoined / Left), live,
   * replayed after a reconnection, or after a switchRoom that does not say.
   * Default true (unlike ZEGO's).
   */
  isUserStatusNotify?: boolean;
  /** ZEGO Web's name for isUserStatusNotify; false turns the updates off. */
  userUpdate?: boolean;
  /** The capacity of a room this call creates (1002034 past it); 0: none. An existing room's is kept. */
  maxMemberCount?: number;
  /** 'anchor' (default) may publish; 'audience' only plays. */
  role?: 'anchor' | 'audience';
}

export interface SwitchRoomConfig extends LoginConfig {
  /** A newer token for the session (it covers every room). */
  token?: string;
}

export interface PublishOption {
  /** Required in multi-room mode (1003070). */
  roomID?: string;
  extraInfo?: string;
}

export interface PlayOption {
  /** Default: the room the stream is published in, if the session is in it. */
  roomID?: string;
}

export interface ServerResponse {
  errorCode: 0;
  messageID?: string;
  /** The room event's sequence (broadcast and custom command). */
  seq?: number;
}

export declare class RoomlogEngine {
  /**
   * @param appID kept for ZEGO compatibility: the token names the app
   * @param server the WebSocket URL (ws://host/ws); default: the /ws of the server the module came from
   */
  constructor(appID?: number | string, server?: string, options?: RoomlogOptions);
  readonly appID: number | string;
  readonly server: string;
  /** The session's ID ('' before the first connection). */
  readonly session: string;
  /** The rooms the session is in, in the order they were entered. */
  readonly rooms: string[];

  on<K extends keyof RoomlogEvents>(event: K, callback: RoomlogEvents[K]): boolean;
  off<K extends keyof RoomlogEvents>(event: K, callback?: RoomlogEvents[K]): boolean;

  enableMultiRoom(enable: boolean): boolean;
  setRoomMode(mode: 'single' | 'multi'): boolean;

  loginRoom(roomID: string, token: string, user: ZegoUser, config?: LoginConfig): Promise<true>;
  logoutRoom(roomID?: string): Promise<string[]>;
  switchRoom(fromRoomID: string, toRoomID: string, config?: SwitchRoomConfig): Promise<true>;
  switchRoom(
    fromRoomID: string,
    toRoomInfo: ZIMRoomInfo,
    isCreateWhenRoomNotExisted?: boolean,
    config?: ZIMRoomAdvancedConfig,
  ): Promise<{ roomInfo: ZIMRoomFullInfo }>;

  login(userInfo: ZegoUser, token: string): Promise<void>;
  createRoom(roomInfo: ZIMRoomInfo, config?: ZIMRoomAdvancedConfig): Promise<{ roomInfo: ZIMRoomFullInfo }>;
  enterRoom(roomInfo: ZIMRoomInfo, config?: ZIMRoomAdvancedConfig): Promise<{ roomInfo: ZIMRoomFullInfo }>;
  joinRoom(roomID: string): Promise<{ roomInfo: ZIMRoomFullInfo }>;
  leaveRoom(roomID: string): Promise<{ roomID: string }>;
  leaveAllRoom(): Promise<{ roomIDs: string[] }>;
  setRoomAttributes(roomAttributes: Record<string, string>, roomID: string): Promise<{ roomID: string; errorKeys: string[] }>;
  deleteRoomAttributes(keys: string[], roomID: string): Promise<{ roomID: string; errorKeys: string[] }>;
  queryRoom(roomID: string): Promise<RoomSnapshot>;

  sendBroadcastMessage(roomID: string, message: string): Promise<ServerResponse>;
  sendBarrageMessage(roomID: string, message: string): Promise<ServerResponse>;
  sendCustomCommand(roomID: string, command: string | object, toUserList?: Array<string | ZegoUser>): Promise<ServerResponse>;
  setRoomExtraInfo(roomID: string, key: string, value: string): Promise<ServerResponse>;
  setStreamExtraInfo(streamID: string, extraInfo: string): Promise<ServerResponse>;
  /**
   * The token is the session's: roomID (ZEGO's) changes nothing. Called while
   * reconnecting, it resolves once the connection is back, and that
   * reconnection already resumes, and enters rooms again, with the new token.
   */
  renewToken(token: string, roomID?: string): Promise<true>;

  startPublishingStream(streamID: string, localStream: MediaStream, option?: PublishOption): Promise<true>;
  stopPublishingStream(streamID: string): Promise<true>;
  startPlayingStream(streamID: string, option?: PlayOption): Promise<MediaStream>;
  stopPlayingStream(streamID: string): Promise<true>;

  destroyEngine(): void;
}

export { RoomlogEngine as ZegoExpressEngine };
export default RoomlogEngine;
