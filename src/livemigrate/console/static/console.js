// The console's only script, no library: sections marked data-live are fetched again every 2 s and
// replaced (unless the person is typing in one), and forms marked data-confirm ask before they post.
(function () {
  "use strict";
  // A page that answered a POST (a secret shown once) says where it lives: show that address, so that
  // a reload asks for the page again instead of posting the form again.
  const page = document.body.dataset.page;
  if (page && page !== window.location.pathname) window.history.replaceState(null, "", page);
  async function refresh() {
    const sections = document.querySelectorAll("[data-live][id]");
    if (!sections.length || document.hidden) return;
    try {
      const answer = await fetch(window.location.pathname, { credentials: "same-origin" });
      if (!answer.ok) return;
      const fresh = new DOMParser().parseFromString(await answer.text(), "text/html");
      for (const section of sections) {
        const next = fresh.getElementById(section.id);
        if (next && !section.contains(document.activeElement)) section.replaceWith(next);
      }
    } catch (error) {
      // the server is away for a moment: the next round tries again
    }
  }
  window.setInterval(refresh, 2000);
  document.addEventListener("submit", function (event) {
    const question = event.target.dataset.confirm;
    if (question && !window.confirm(question)) event.preventDefault();
  });
})();
