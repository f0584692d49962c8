// The live page: the microphone through MediaRecorder (WebM/Opus, or Ogg/Opus in browsers
// without WebM recording) to /v1/realtime, partial and final text shown as it streams.

import { realtimeSocket, timestamp } from "./api.js";

const $ = (id) => document.getElementById(id);
const TIMESLICE_MS = 250;
let session = null;
let showError = () => {};

function status(text) {
  $("live-status").textContent = text;
}

function recorderType() {
  const types = ["audio/webm;codecs=opus", "audio/ogg;codecs=opus", "audio/webm"];
  return types.find((t) => window.MediaRecorder && MediaRecorder.isTypeSupported(t)) || "";
}

function srt(segments) {
  return segments.map((s, i) =>
    `${i + 1}\n${timestamp(s.start, ",")} --> ${timestamp(s.end, ",")}\n${s.text.trim()}\n`).join("\n");
}

function offerDownloads(end) {
  const files = { txt: end.segments.map((s) => s.text.trim()).join("\n") + "\n", srt: srt(end.segments) };
  const links = Object.entries(files).map(([format, text]) => {
    const href = URL.createObjectURL(new Blob([text], { type: "text/plain" }));
    return Object.assign(document.createElement("a"), { href, download: `live.${format}`, textContent: format });
  });
  $("live-downloads").replaceChildren("Download: ", ...links);
}

function onEvent(event) {
  if (event.type === "ready") {
    status("listening");
  } else if (event.type === "partial") {
    $("partial").textContent = event.text;
  } else if (event.type === "final") {
    const current = $("current-final");
    if (!current.textContent) current.dataset.start = event.start;
    current.textContent += event.text;
    if (event.segment_end) {
      const line = document.createElement("div");
      line.className = "seg final-line";
      const time = document.createElement("time");
      time.textContent = timestamp(Number(current.dataset.start ?? event.start));
      const text = document.createElement("span");
      text.textContent = current.textContent.trim();
      line.append(time, text);
      if (text.textContent) $("final-lines").append(line);
      current.textContent = "";
      delete current.dataset.start;
    }
  } else if (event.type === "error") {
    showError(event.error.message);
  } else if (event.type === "end") {
    status(`done: ${event.duration.toFixed(1)} s`);
    offerDownloads(event);
  }
}

async function start() {
  $("live-start").disabled = true;
  $("final-lines").replaceChildren();
  $("current-final").textContent = "";
  $("partial").textContent = "";
  $("live-downloads").replaceChildren();
  let stream;
  try {
    stream = await navigator.mediaDevices.getUserMedia({ audio: { channelCount: 1 } });
  } catch (e) {
    $("live-start").disabled = false;
    showError(`cannot use the microphone: ${e.message}`);
    return;
  }
  const mimeType = recorderType();
  const socket = realtimeSocket({
    encoding: "webm", language: $("live-language").value.trim(), task: $("live-task").value,
  });
  socket.binaryType = "arraybuffer";
  const recorder = new MediaRecorder(stream, mimeType ? { mimeType, audioBitsPerSecond: 32000 } : {});
  session = { socket, recorder, stream };
  status("connecting");
  socket.onopen = () => {
    recorder.ondataavailable = (e) => {
      if (e.data.size && socket.readyState === WebSocket.OPEN) socket.send(e.data);
    };
    recorder.onstop = () => {
      if (socket.readyState === WebSocket.OPEN) socket.send(JSON.stringify({ type: "stop" }));
    };
    recorder.start(TIMESLICE_MS);
    $("live-stop").disabled = false;
  };
  socket.onmessage = (e) => onEvent(JSON.parse(e.data));
  socket.onclose = (e) => {
    if (recorder.state !== "inactive") recorder.stop();
    stream.getTracks().forEach((t) => t.stop());
    if (e.code !== 1000 && e.code !== 1005) status(`closed (${e.code})`);
    $("live-start").disabled = false;
    $("live-stop").disabled = true;
    session = null;
  };
}

function stop() {
  if (!session) return;
  $("live-stop").disabled = true;
  status("finishing");
  session.recorder.stop();  // sends the last chunk, then "stop"; the server answers "end"
  session.stream.getTracks().forEach((t) => t.stop());
}

export function setUpLive(onError) {
  showError = onError;
  $("live-start").addEventListener("click", start);
  $("live-stop").addEventListener("click", stop);
  if (!window.MediaRecorder || !navigator.mediaDevices) {
    $("live-start").disabled = true;
    status("this browser cannot record audio");
  }
}
