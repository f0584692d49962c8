// The server's HTTP API, with the user's key on every request. The key is kept in this tab's
// sessionStorage (gone when the tab closes) unless the user asks to remember it on this device:
// then in localStorage, in clear, until cleared.

const KEY_STORAGE = "malsori.apiKey";

export function getKey() {
  return sessionStorage.getItem(KEY_STORAGE) || localStorage.getItem(KEY_STORAGE) || "";
}

export function keyRemembered() {
  return Boolean(localStorage.getItem(KEY_STORAGE));
}

export function setKey(key, remember = false) {
  sessionStorage.removeItem(KEY_STORAGE);
  localStorage.removeItem(KEY_STORAGE);
  if (key) (remember ? localStorage : sessionStorage).setItem(KEY_STORAGE, key);
}

function authHeaders() {
  const key = getKey();
  return key ? { Authorization: `Bearer ${key}` } : {};
}

async function failure(response) {
  try {
    const body = await response.json();
    return new Error(body.error?.message || `HTTP ${response.status}`);
  } catch {
    return new Error(`HTTP ${response.status}`);
  }
}

export async function getJSON(path) {
  const response = await fetch(path, { headers: authHeaders() });
  if (!response.ok) throw await failure(response);
  return response.json();
}

export async function getBlob(path) {
  const response = await fetch(path, { headers: authHeaders() });
  if (!response.ok) throw await failure(response);
  return response.blob();
}

// POST /v1/jobs with upload progress (fetch cannot report it; XMLHttpRequest can).
export function createJob(file, fields, onProgress) {
  return new Promise((resolve, reject) => {
    const form = new FormData();
    form.append("file", file, file.name);
    for (const [name, value] of Object.entries(fields)) if (value) form.append(name, value);
    const xhr = new XMLHttpRequest();
    xhr.open("POST", "/v1/jobs");
    for (const [name, value] of Object.entries(authHeaders())) xhr.setRequestHeader(name, value);
    xhr.upload.onprogress = (e) => e.lengthComputable && onProgress(e.loaded / e.total);
    xhr.onload = () => {
      let body = null;
      try { body = JSON.parse(xhr.responseText); } catch { /* not JSON */ }
      if (xhr.status === 202) resolve(body);
      else reject(new Error(body?.error?.message || `HTTP ${xhr.status}`));
    };
    xhr.onerror = () => reject(new Error("network error"));
    xhr.send(form);
  });
}

// The WebSocket URL and subprotocols for /v1/realtime: browsers cannot set headers on a
// WebSocket, so the key travels as a "malsori-key.<key>" subprotocol (never in the URL).
export function realtimeSocket(params) {
  const scheme = location.protocol === "https:" ? "wss" : "ws";
  const query = new URLSearchParams(Object.entries(params).filter(([, v]) => v));
  const protocols = ["malsori.v1"];
  const key = getKey();
  if (key) protocols.push(`malsori-key.${key}`);
  return new WebSocket(`${scheme}://${location.host}/v1/realtime?${query}`, protocols);
}

export function timestamp(seconds, decimal = ".") {
  const ms = Math.max(0, Math.round(seconds * 1000));
  const h = Math.floor(ms / 3600000), m = Math.floor(ms / 60000) % 60;
  const s = Math.floor(ms / 1000) % 60, rest = ms % 1000;
  const pad = (n, w = 2) => String(n).padStart(w, "0");
  return `${pad(h)}:${pad(m)}:${pad(s)}${decimal}${pad(rest, 3)}`;
}
