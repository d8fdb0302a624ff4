// The new-search form: a clip is sent first on its own (POST /search/upload), then the form with the upload's
// id, while the page polls /search/progress/<id> and shows how far the clip's analysis has come. Photos, and
// browsers without scripts, use the plain form post; the server answers both alike.
(() => {
  const POLL_MS = 500;
  const VIDEO = /\.(mp4|mov|m4v|avi|mkv|webm|mpg|mpeg|3gp|ts)$/i;

  function isClip(form) {
    const input = form.querySelector("input[name=probe]");
    if (input && input.files && input.files.length) {
      return Array.from(input.files).some((f) => (f.type || "").startsWith("video/") || VIDEO.test(f.name));
    }
    return form.dataset.clip === "1" && !!form.querySelector("input[name=upload]");
  }

  function show(form, percent, text) {
    const box = form.querySelector("#search-progress");
    if (!box) return;
    box.hidden = false;
    const bar = box.querySelector("progress");
    if (percent === null) bar.removeAttribute("value"); else bar.value = percent;
    box.querySelector(".status").textContent = text;
  }

  function upload(form) {  // XMLHttpRequest, for the upload's own progress
    return new Promise((resolve, reject) => {
      const data = new FormData();
      data.append("csrf", form.querySelector("input[name=csrf]").value);
      for (const file of form.querySelector("input[name=probe]").files) data.append("probe", file);
      const xhr = new XMLHttpRequest();
      xhr.open("POST", "/search/upload");
      xhr.setRequestHeader("Accept", "application/json");
      xhr.upload.onprogress = (e) => {
        if (e.lengthComputable) show(form, Math.round(100 * e.loaded / e.total), `uploading the clip: ${Math.round(100 * e.loaded / e.total)} %`);
      };
      xhr.onload = () => (xhr.status === 200 ? resolve(JSON.parse(xhr.responseText)) : reject(xhr));
      xhr.onerror = () => reject(xhr);
      xhr.send(data);
    });
  }

  function poll(form, id) {
    let stopped = false;
    const tick = async () => {
      if (stopped) return;
      try {
        const state = await (await fetch(`/search/progress/${id}`, { headers: { Accept: "application/json" } })).json();
        if (state.state === "analysing" && state.duration_s > 0) {
          const done = Math.min(state.done_s, state.duration_s);
          const percent = Math.round(100 * done / state.duration_s);
          show(form, percent, percent >= 99 ? "clip analysed; searching the gallery…"
            : `analysing the clip: ${done.toFixed(1)} of ${state.duration_s.toFixed(1)} s`);
        } else if (state.state === "analysing") {
          show(form, null, `analysing the clip: ${state.done_s.toFixed(1)} s so far`);
        } else if (state.state === "waiting") {
          show(form, null, "working… (a clip already analysed is not analysed again)");
        }
      } catch (e) { /* the next tick tries again */ }
      if (!stopped) setTimeout(tick, POLL_MS);
    };
    tick();
    return () => { stopped = true; };
  }

  function replacePage(html) {  // the form again (a pick, a refusal): shown in place of this page
    const next = new DOMParser().parseFromString(html, "text/html");
    document.title = next.title;
    document.body.replaceWith(document.adoptNode(next.body));
    const first = document.querySelector("[aria-invalid=true], #form-error, #track-picker input:not([disabled])");
    if (first) first.focus ? first.focus() : null;
  }

  document.addEventListener("submit", async (event) => {
    const form = event.target;
    if (form.id !== "new-search" || event.defaultPrevented || !window.fetch || !isClip(form)) return;
    event.preventDefault();
    const button = form.querySelector("button");
    button.disabled = true;
    try {
      const probe = form.querySelector("input[name=probe]");
      if (probe && probe.files && probe.files.length) {
        show(form, 0, "uploading the clip…");
        const kept = await upload(form);
        let hidden = form.querySelector("input[name=upload]");
        if (!hidden) {
          hidden = document.createElement("input");
          hidden.type = "hidden";
          hidden.name = "upload";
          form.appendChild(hidden);
        }
        hidden.value = kept.upload;
        probe.value = "";  // sent already: the form refers to it by its id
      }
      const data = new FormData(form);
      data.delete("probe");
      const stop = poll(form, form.querySelector("input[name=upload]").value);
      let answer;
      try {
        answer = await fetch(form.action, { method: "POST", body: data });
      } finally {
        stop();
      }
      if (answer.redirected) {
        window.location.assign(answer.url);
        return;
      }
      replacePage(await answer.text());
    } catch (failure) {
      if (failure && typeof failure.responseText === "string" && failure.responseText) {
        replacePage(failure.responseText);  // the upload itself refused (too large, not signed in)
      } else {
        button.disabled = false;
        show(form, 0, "the connection failed — try again");
      }
    }
  });
})();
