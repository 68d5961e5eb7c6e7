// The console's only script, no library: sections marked data-live are fetched again every 2 s and
// replaced (unless the person is typing in one), and forms marked data-confirm ask before they post.
(function () {
  "use strict";
  // A page that answered a POST (a secret shown once) says where it lives: show that address, so that
  // a reload asks for the page again instead of posting the form again.
  const page = document.body.dataset.page;
  if (page && page !== window.location.pathname) window.history.replaceState(null, "", page);
  // What the person may be typing or choosing in: a section holding one of these keeps still. A button or
  // a link keeps the focus once clicked (and after a dismissed confirmation): that must not freeze a section.
  const NOT_TYPED = ["button", "submit", "reset", "checkbox", "radio", "hidden", "image", "range", "color", "file"];
  function typingIn(section) {
    const focused = document.activeElement;
    if (!focused || !section.contains(focused)) return false;
    const tag = focused.tagName;
    return tag === "TEXTAREA" || tag === "SELECT" || (tag === "INPUT" && !NOT_TYPED.includes(focused.type));
  }
  async function refresh() {
    const sections = document.querySelectorAll("[data-live][id]");
    if (!sections.length || document.hidden) return;
    try {
      const answer = await fetch(window.location.pathname, { credentials: "same-origin" });
      if (!answer.ok) return;
      if (answer.redirected && new URL(answer.url).pathname === "/console/sign-in") {
        window.location.assign(answer.url); // the session ended (signed out elsewhere, the key deleted)
        return;
      }
      const fresh = new DOMParser().parseFromString(await answer.text(), "text/html");
      for (const section of sections) {
        const next = fresh.getElementById(section.id);
        if (next && !typingIn(section)) section.replaceWith(next);
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
