// wagate dashboard: the little the pages need beyond htmx. Copy buttons, confirmations before
// destructive forms, and ticking window countdowns. Every page works without it.
"use strict";

document.addEventListener("click", function (event) {
  var button = event.target.closest("[data-copy]");
  if (!button) return;
  var field = document.getElementById(button.getAttribute("data-copy"));
  if (!field) return;
  var done = function () {
    button.textContent = "Copied";
    setTimeout(function () { button.textContent = "Copy"; }, 2000);
  };
  if (navigator.clipboard && window.isSecureContext) {
    navigator.clipboard.writeText(field.value).then(done, function () {
      field.select();
    });
  } else {
    field.select();
    document.execCommand("copy");
    done();
  }
});

document.addEventListener("submit", function (event) {
  var form = event.target;
  var question = form.getAttribute("data-confirm");
  if (question && !window.confirm(question)) event.preventDefault();
});

function pad(n) { return n < 10 ? "0" + n : String(n); }

function tick() {
  var now = Date.now();
  document.querySelectorAll("[data-expires]").forEach(function (el) {
    var left = Math.floor((Date.parse(el.getAttribute("data-expires")) - now) / 1000);
    if (isNaN(left)) return;
    if (left <= 0) { el.textContent = "closed"; return; }
    var h = Math.floor(left / 3600), m = Math.floor((left % 3600) / 60), s = left % 60;
    el.textContent = h + ":" + pad(m) + ":" + pad(s);
  });
}
setInterval(tick, 1000);
document.addEventListener("DOMContentLoaded", tick);
document.addEventListener("htmx:afterSwap", tick);

// Chats stay scrolled to their newest message across live updates, unless the reader has
// scrolled up to read older ones.
var chatScroll = null;
function stickyChat(root) { return (root || document).querySelector("[data-stick-bottom]"); }
document.addEventListener("htmx:beforeSwap", function () {
  var chat = stickyChat();
  chatScroll = chat ? {
    top: chat.scrollTop,
    atBottom: chat.scrollTop + chat.clientHeight >= chat.scrollHeight - 24,
  } : null;
});
document.addEventListener("htmx:afterSettle", function () {
  var chat = stickyChat();
  if (!chat) return;
  if (!chatScroll || chatScroll.atBottom) chat.scrollTop = chat.scrollHeight;
  else chat.scrollTop = chatScroll.top;
});
document.addEventListener("DOMContentLoaded", function () {
  var chat = stickyChat();
  if (chat) chat.scrollTop = chat.scrollHeight;
});

// A form sent with htmx that asks for it (data-reset) is cleared once its answer is in.
document.addEventListener("htmx:afterRequest", function (event) {
  var form = event.detail.elt;
  if (form && form.matches && form.matches("form[data-reset]") && event.detail.successful) {
    form.reset();
    var first = form.querySelector("input[type=text], textarea");
    if (first) first.focus();
  }
});
