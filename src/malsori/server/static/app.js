// Entry point: the API key form, the two pages (#files, #live) and error messages.

import { getKey, keyRemembered, setKey } from "./api.js";
import { refreshJobs, setUpFiles } from "./files.js";
import { setUpLive } from "./live.js";

const $ = (id) => document.getElementById(id);
let errorTimer = null;

function showError(message) {
  const box = $("error");
  box.textContent = message;
  box.hidden = false;
  clearTimeout(errorTimer);
  errorTimer = setTimeout(() => { box.hidden = true; }, 8000);
}

function route() {
  const page = location.hash === "#live" ? "live" : "files";
  for (const name of ["files", "live"]) {
    $(name).hidden = name !== page;
    $(`tab-${name}`).classList.toggle("active", name === page);
  }
  if (page === "files") refreshJobs();
}

function setUpKey() {
  $("api-key").value = getKey();
  $("remember-key").checked = keyRemembered();
  $("key-status").textContent = getKey() ? "saved" : "";
  $("key-form").addEventListener("submit", (e) => {
    e.preventDefault();
    setKey($("api-key").value.trim(), $("remember-key").checked);
    $("key-status").textContent = getKey() ? "saved" : "cleared";
    route();
  });
}

setUpKey();
setUpFiles(showError);
setUpLive(showError);
window.addEventListener("hashchange", route);
route();
