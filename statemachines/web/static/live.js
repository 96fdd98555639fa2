// Follows the engine without reloading the page: every few seconds (the body's
// data-refresh, in seconds; 0 turns it off) this page is read again and only its
// <section id="live"> is swapped in, so a form being filled in is left alone.
(() => {
  const every = Number(document.body.dataset.refresh || 0);
  if (!(every > 0)) return;
  setInterval(async () => {
    const live = document.getElementById("live");
    if (!live || document.hidden) return;
    try {
      const answer = await fetch(location.href, {cache: "no-store"});
      if (!answer.ok) return;  // a 503 while the database is away: keep what is shown
      const page = new DOMParser().parseFromString(await answer.text(), "text/html");
      const fresh = page.getElementById("live");
      if (fresh) live.replaceChildren(...fresh.childNodes);
    } catch (away) {
      // The server is away for a moment (restarting): the next round tries again.
    }
  }, every * 1000);
})();
