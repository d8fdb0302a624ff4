// Enrollment by upload with progress (the gallery's enroll page). The form is sent by XMLHttpRequest, which
// reports the upload's bytes; meanwhile the service is asked how far the analysis is. The answer (the summary
// with its refusals table, or the form again with its message) replaces the page's main part. Without this
// script the form is posted as usual (photos of one subject) and the browser shows the same answer.
(() => {
  const POLL_MS = 400;

  function jobId() {
    const bytes = new Uint8Array(16);
    crypto.getRandomValues(bytes);
    return Array.from(bytes, (b) => b.toString(16).padStart(2, "0")).join("");
  }

  // A folder's photos arrive as <chosen folder>/<subject>/<file>: sent as <subject>/<file>, as the library wants.
  function subjectPath(file) {
    const parts = (file.webkitRelativePath || "").split("/");
    return parts.length > 2 ? parts.slice(1).join("/") : file.name;
  }

  function show(stage, done, total) {
    document.getElementById("enroll-progress").hidden = false;
    document.getElementById("enroll-stage").textContent = stage;
    const bar = document.getElementById("enroll-bar");
    if (total) {
      bar.max = total;
      bar.value = done;
    } else {
      bar.removeAttribute("value");  // not known yet: an indeterminate bar
    }
  }

  function replaceMain(html, url) {
    const answer = new DOMParser().parseFromString(html, "text/html");
    const main = answer.querySelector("main");
    if (!main) {
      document.open();
      document.write(html);
      document.close();
      return;
    }
    document.querySelector("main").replaceWith(document.adoptNode(main));
    document.title = answer.title;
    if (url && url !== location.href) {
      history.replaceState(null, "", url);  // the answer's own address: a reload shows it again
    }
  }

  function send(form) {
    const data = new FormData();
    const job = jobId();
    data.append("csrf", form.elements.csrf.value);
    data.append("job", job);
    const folder = form.elements.folder ? Array.from(form.elements.folder.files) : [];
    if (folder.length) {
      folder.forEach((file) => data.append("photo", file, subjectPath(file)));
    } else {
      Array.from(form.elements.photo.files).forEach((file) => data.append("photo", file, file.name));
      data.append("subject", form.elements.subject.value);
    }
    const progressUrl = form.action.replace(/\/enroll$/, "/enrollments/" + job + "/progress");
    let polling = null;
    const poll = () => {
      fetch(progressUrl, {credentials: "same-origin"}).then((r) => r.json()).then((p) => {
        if (p.stage === "analysing") {
          show(`Analysing: ${p.done} of ${p.total} photos`, p.done, p.total);
        }
      }).catch(() => {});
    };
    const request = new XMLHttpRequest();
    request.open("POST", form.action);
    request.upload.onprogress = (e) => {
      if (e.lengthComputable) {
        show(`Uploading: ${Math.round(100 * e.loaded / e.total)} %`, e.loaded, e.total);
      }
    };
    request.upload.onload = () => {
      show("Uploaded; reading the photos…", 0, 0);
      polling = setInterval(poll, POLL_MS);
    };
    request.onload = () => {
      clearInterval(polling);
      replaceMain(request.responseText, request.responseURL);
    };
    request.onerror = () => {
      clearInterval(polling);
      show("The upload failed: the service could not be reached. Try again.", 0, 0);
    };
    form.querySelector("button").disabled = true;
    show("Uploading…", 0, 0);
    request.send(data);
  }

  document.addEventListener("submit", (event) => {
    const form = event.target;
    if (event.defaultPrevented || !form.matches || !form.matches("form[data-enroll]")) {
      return;
    }
    event.preventDefault();
    send(form);
  });
})();
