#!/usr/bin/env node
// Independent LoRaWAN 1.0.x oracle for tests/protocols/test_lorawan_interop.py.
//
// One JSON request per stdin line, one JSON answer per stdout line:
//   {"op": "...", ...}  ->  {"ok": true, "result": ...} | {"ok": false, "error": "..."}
// Byte strings are hex. Following lora-packet, DevAddr, EUIs, nonces and NetID
// are passed big-endian (display order); fcntMsb is the upper 16 FCnt bits as
// the 2-octet little-endian Buffer lora-packet expects ("0100" for 0x0001).
"use strict";

const readline = require("readline");
const lp = require("lora-packet");

const hex = (s) => Buffer.from(s || "", "hex");
const optionalKey = (s) => (s ? hex(s) : undefined);

function describe(packet) {
  const mtype = packet.getMType();
  const common = { mtype, mic: packet.MIC.toString("hex") };
  if (mtype === "Join Request") {
    return {
      ...common,
      appEUI: packet.AppEUI.toString("hex"),
      devEUI: packet.DevEUI.toString("hex"),
      devNonce: packet.DevNonce.toString("hex"),
    };
  }
  if (mtype === "Join Accept") {
    // Only meaningful on a decrypted join-accept.
    return {
      ...common,
      appNonce: packet.AppNonce.toString("hex"),
      netID: packet.NetID.toString("hex"),
      devAddr: packet.DevAddr.toString("hex"),
      rx1DrOffset: packet.getDLSettingsRxOneDRoffset(),
      rx2DataRate: packet.getDLSettingsRxTwoDataRate(),
      rxDelay: packet.getRxDelayDel(),
      cfList: packet.CFList.toString("hex"),
    };
  }
  return {
    ...common,
    dir: packet.getDir(),
    devAddr: packet.DevAddr.toString("hex"),
    fcnt: packet.getFCnt(),
    adr: packet.getFCtrlADR(),
    ack: packet.getFCtrlACK(),
    adrAckReq: packet.getDir() === "up" ? packet.getFCtrlADRACKReq() : null,
    fPending: packet.getDir() === "down" ? packet.getFCtrlFPending() : null,
    fopts: packet.FOpts.toString("hex"),
    fport: packet.getFPort(),
    frmPayload: packet.FRMPayload.toString("hex"),
  };
}

const operations = {
  parse: (r) => describe(lp.fromWire(hex(r.phy))),

  verify_mic: (r) =>
    lp.verifyMIC(lp.fromWire(hex(r.phy)), optionalKey(r.nwkSKey), optionalKey(r.appKey), optionalKey(r.fcntMsb)),

  decrypt: (r) =>
    lp.decrypt(lp.fromWire(hex(r.phy)), optionalKey(r.appSKey), optionalKey(r.nwkSKey), optionalKey(r.fcntMsb))
      .toString("hex"),

  decrypt_join_accept: (r) => lp.decryptJoinAccept(lp.fromWire(hex(r.phy)), hex(r.appKey)).toString("hex"),

  build_data: (r) => {
    const fields = {
      MType: r.mtype,
      DevAddr: hex(r.devAddr),
      FCtrl: r.fctrl || {},
      FCnt: r.fcnt,
      FOpts: hex(r.fopts),
      payload: hex(r.payload),
    };
    if (r.fport !== null && r.fport !== undefined) fields.FPort = r.fport;
    const fcntMsb = hex(r.fcntMsb || "0000");
    const packet = lp.fromFields(fields, hex(r.appSKey), hex(r.nwkSKey), undefined, fcntMsb);
    if (packet.getFPort() === null) {
      // fromFields signs only frames with an FPort; sign port-less frames here.
      lp.recalculateMIC(packet, hex(r.nwkSKey), undefined, fcntMsb);
    }
    return packet.getPHYPayload().toString("hex");
  },

  build_join_request: (r) =>
    lp.fromFields(
      { MType: "Join Request", AppEUI: hex(r.appEUI), DevEUI: hex(r.devEUI), DevNonce: hex(r.devNonce) },
      undefined, undefined, hex(r.appKey),
    ).getPHYPayload().toString("hex"),

  build_join_accept: (r) =>
    lp.fromFields(
      {
        MType: "Join Accept",
        AppNonce: hex(r.appNonce),
        NetID: hex(r.netID),
        DevAddr: hex(r.devAddr),
        DLSettings: Buffer.from([r.dlSettings]),
        RxDelay: Buffer.from([r.rxDelay]),
        CFList: hex(r.cfList),
      },
      undefined, undefined, hex(r.appKey),
    ).getPHYPayload().toString("hex"),

  session_keys: (r) => {
    const keys = lp.generateSessionKeys10(hex(r.appKey), hex(r.netID), hex(r.appNonce), hex(r.devNonce));
    return { nwkSKey: keys.NwkSKey.toString("hex"), appSKey: keys.AppSKey.toString("hex") };
  },
};

function answer(line) {
  try {
    const request = JSON.parse(line);
    const operation = operations[request.op];
    if (!operation) throw new Error(`unknown op ${JSON.stringify(request.op)}`);
    return { ok: true, result: operation(request) };
  } catch (error) {
    return { ok: false, error: String(error && error.message ? error.message : error) };
  }
}

readline.createInterface({ input: process.stdin }).on("line", (line) => {
  if (line.trim()) process.stdout.write(JSON.stringify(answer(line)) + "\n");
});
