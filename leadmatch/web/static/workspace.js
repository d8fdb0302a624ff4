// Shared by every page (the CSP allows scripts from this site only, never inline ones).
// A form with data-confirm asks before it is sent; the text names what will happen.
document.addEventListener("submit", (event) => {
  const form = event.target;
  const text = form.dataset ? form.dataset.confirm : null;
  if (text && !window.confirm(text)) {
    event.preventDefault();
  }
}, true);

// A "back" link goes back in the browser's history (the page before keeps what was typed there).
document.addEventListener("click", (event) => {
  const link = event.target.closest ? event.target.closest("a[data-back]") : null;
  if (link && window.history.length > 1) {
    event.preventDefault();
    window.history.back();
  }
});
