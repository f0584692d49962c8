// Uploads (drag and drop), job progress, the job list and the result view with downloads.

import { createJob, getBlob, getJSON, timestamp } from "./api.js";

const $ = (id) => document.getElementById(id);
const FORMATS = ["txt", "srt", "vtt", "json"];
let chosen = [];
let showError = () => {};

function el(tag, props = {}, ...children) {
  const node = Object.assign(document.createElement(tag), props);
  node.append(...children);
  return node;
}

function choose(files) {
  chosen = [...files];
  $("chosen").textContent = chosen.map((f) => f.name).join(", ");
  $("upload-button").disabled = chosen.length === 0;
}

async function upload(file) {
  const bar = el("progress", { max: 1, value: 0 });
  const label = el("span", { textContent: `${file.name}: uploading` });
  const row = el("div", { className: "upload" }, label, bar);
  $("uploads").append(row);
  const fields = { language: $("language").value.trim(), task: $("task").value };
  const job = await createJob(file, fields, (share) => { bar.value = share; });
  await follow(job.id, label, bar);
  row.remove();
}

async function follow(id, label, bar) {
  for (;;) {
    const job = await getJSON(`/v1/jobs/${id}`);
    label.textContent = `${job.filename}: ${job.status} ${job.progress.toFixed(0)}%`;
    bar.value = job.progress / 100;
    if (job.status === "completed") { await showResult(job); break; }
    if (job.status === "failed") throw new Error(`${job.filename}: ${job.error?.message || "failed"}`);
    await new Promise((r) => setTimeout(r, 700));
  }
  refreshJobs();
}

export async function showResult(job) {
  $("result").hidden = false;
  $("result-title").textContent = `${job.filename} (${job.duration?.toFixed(1) ?? "?"} s)`;
  const links = FORMATS.map((format) => {
    const a = el("a", { href: "#", textContent: format, className: `download-${format}` });
    a.addEventListener("click", async (e) => {
      e.preventDefault();
      const blob = await getBlob(`/v1/jobs/${job.id}/result?format=${format}`);
      const stem = job.filename.replace(/\.[^.]*$/, "") || "transcript";
      const link = el("a", { href: URL.createObjectURL(blob), download: `${stem}.${format}` });
      link.click();
      setTimeout(() => URL.revokeObjectURL(link.href), 10000);
    });
    return a;
  });
  $("downloads").replaceChildren("Download: ", ...links);
  const view = $("result-view");
  const format = $("format").value;
  if (format === "segments") {
    const result = await getJSON(`/v1/jobs/${job.id}/result?format=json`);
    view.replaceChildren(...result.segments.map((s) => el("div", { className: "seg" },
      el("time", { textContent: `${timestamp(s.start)} → ${timestamp(s.end)}` }),
      el("span", { textContent: s.text.trim() }))));
  } else {
    view.textContent = await (await getBlob(`/v1/jobs/${job.id}/result?format=${format}`)).text();
  }
}

export async function refreshJobs() {
  let list;
  try {
    list = await getJSON("/v1/jobs?limit=50");
  } catch (e) {
    // Shown in the table, not as an alert: before a key is entered this is expected.
    const cell = el("td", { colSpan: 6, className: "muted", textContent: e.message });
    $("jobs").tBodies[0].replaceChildren(el("tr", {}, cell));
    return;
  }
  const rows = list.data.map((job) => {
    const open = el("button", { type: "button", className: "small", textContent: "view",
                                disabled: job.status !== "completed" });
    open.addEventListener("click", () => showResult(job).catch((e) => showError(e.message)));
    const created = new Date(job.created_at * 1000).toLocaleString();
    return el("tr", { className: "job" },
      el("td", { textContent: job.filename }),
      el("td", { textContent: job.status, className: `status-${job.status}` }),
      el("td", { textContent: `${job.progress.toFixed(0)}%` }),
      el("td", { textContent: job.duration ? `${job.duration.toFixed(1)} s` : "" }),
      el("td", { textContent: created }),
      el("td", {}, open));
  });
  $("jobs").tBodies[0].replaceChildren(...rows);
}

export function setUpFiles(onError) {
  showError = onError;
  const zone = $("drop-zone");
  zone.addEventListener("dragover", (e) => { e.preventDefault(); zone.classList.add("over"); });
  zone.addEventListener("dragleave", () => zone.classList.remove("over"));
  zone.addEventListener("drop", (e) => {
    e.preventDefault();
    zone.classList.remove("over");
    choose(e.dataTransfer.files);
  });
  $("file-input").addEventListener("change", (e) => choose(e.target.files));
  $("upload-form").addEventListener("submit", async (e) => {
    e.preventDefault();
    const files = chosen;
    choose([]);
    await Promise.all(files.map((f) => upload(f).catch((err) => showError(err.message))));
  });
  $("refresh-jobs").addEventListener("click", refreshJobs);
}
