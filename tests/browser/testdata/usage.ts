// The seeds' ZEGO Web SDK and ZIM examples, ported to roomlog by changing the
// import: `tsc --noEmit` (package.json) checks that they type-check against
// roomlog.d.ts. It is never run.
import { ZegoExpressEngine, RoomlogError, RoomStateChangedReason, type ZegoUser } from '../../../transport/web/assets/sdk/roomlog.js';

export async function zegoMultiRoom(token: string, userID: string, remoteVideo: HTMLVideoElement): Promise<void> {
  const zg = new ZegoExpressEngine(1234567, 'ws://127.0.0.1:7070/ws');
  zg.enableMultiRoom(true);
  await zg.loginRoom('first', token, { userID: 'zegoUser' });
  await zg.loginRoom('second', token, { userID: 'zegoUser' }, { isUserStatusNotify: false, maxMemberCount: 50 });
  await zg.switchRoom('first', 'third', { token, userUpdate: true });

  const localStream = await navigator.mediaDevices.getUserMedia({ video: true, audio: true });
  await zg.startPublishingStream(userID, localStream, { roomID: 'second' });
  const remoteStream = await zg.startPlayingStream('other-user');
  remoteVideo.srcObject = remoteStream;

  zg.on('IMRecvBroadcastMessage', (roomID, chatData) => {
    for (const m of chatData) console.log(roomID, m.fromUser.userID, m.message, m.sendTime, m.messageID);
  });
  await zg.sendBroadcastMessage('second', JSON.stringify({ text: 'rtc.sendBroadcastMessage test' }));
  zg.on('IMRecvBarrageMessage', (roomID, chatData) => console.log(roomID, chatData[0].message));
  await zg.sendBarrageMessage('second', JSON.stringify({ text: 'rtc.sendBarrageMessage test' }));
  await zg.sendCustomCommand('second', { text: 'rtc.sendCustomCommand test' }, []);
  zg.on('IMRecvCustomCommand', (roomID: string, fromUser: ZegoUser, command: string) => console.log(roomID, fromUser, command));
  await zg.setRoomExtraInfo('second', '2', JSON.stringify({ text: 'rtc.setRoomExtraInfo test' }));
  zg.on('roomExtraInfoUpdate', (roomID, list) => console.log(roomID, list[0].key, list[0].value, list[0].updateUser));

  zg.on('roomStateChanged', (roomID, reason, errorCode, extendedData) => {
    if (reason === RoomStateChangedReason.Reconnecting) console.log(roomID, 'reconnecting', errorCode, extendedData.reason);
    if (reason === 'KICKOUT') console.log('kicked out', errorCode);
  });
  zg.on('roomUserUpdate', (roomID, updateType, userList) => console.log(roomID, updateType, userList.map((u) => u.userID)));
  zg.on('roomStreamUpdate', (roomID, updateType, streamList) => console.log(roomID, updateType, streamList[0].streamID));
  zg.on('roomOnlineUserCountUpdate', (roomID, count) => console.log(roomID, count));
  zg.on('tokenWillExpire', async () => {
    await zg.renewToken(token, "second");
  });
  zg.on('publisherStateUpdate', (r) => console.log(r.streamID, r.state, r.errorCode));
  zg.on('playerStateUpdate', (r) => console.log(r.streamID, r.state, r.errorCode));

  try {
    await zg.logoutRoom('roomid');
  } catch (e) {
    if (e instanceof RoomlogError) console.log(e.code, e.name, e.errorCode, e.message);
  }
  await zg.logoutRoom();
  zg.destroyEngine();
}

export async function zimRooms(zim: ZegoExpressEngine, token: string): Promise<void> {
  zim.on('roomMemberJoined', (_zim, { roomID, memberList }) => console.log(roomID, memberList));
  zim.on('roomMemberLeft', (_zim, { roomID, memberList }) => console.log(roomID, memberList));
  zim.on('roomAttributesUpdated', (_zim, { roomID, infos }) => console.log(roomID, infos[0].action, infos[0].roomAttributes));
  zim.on('roomAttributesBatchUpdated', (_zim, { roomID, infos }) => console.log(roomID, infos.length));
  zim.on('roomMemberAttributesUpdated', (_zim, { roomID, infos, operatedInfo }) =>
    console.log(roomID, infos[0].attributesInfo.userID, infos[0].attributesInfo.attributes, infos[0].attributesInfo.deletedKeys, operatedInfo.userID));
  await zim.login({ userID: 'zoe', userName: 'Zoe' }, token);
  const { roomInfo } = await zim.createRoom({ roomID: 'maths', roomName: 'Maths' }, { roomAttributes: { teacher: 'bob' } });
  console.log(roomInfo.baseInfo.roomID);
  await zim.joinRoom('maths');
  await zim.enterRoom({ roomID: 'art', roomName: 'Art' });
  await zim.switchRoom('art', { roomID: 'music', roomName: 'Music' }, true, { roomAttributes: { key1: 'value1' }, roomDestroyDelayTime: 90 });
  await zim.setRoomAttributes({ slide: '5' }, 'maths');
  await zim.deleteRoomAttributes(['slide'], 'maths');
  await zim.leaveRoom('maths');
  const { roomIDs } = await zim.leaveAllRoom();
  console.log(roomIDs);
}
