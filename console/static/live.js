// The live feed: each alert the server sends becomes the table's first row. Text only, never HTML.
(function () {
  const body = document.querySelector('#alerts tbody');
  const state = document.getElementById('feed-state');
  const feed = new EventSource('/alerts/stream');
  feed.onopen = () => { state.textContent = 'live'; };
  // A dropped feed (the page fell behind, the console restarted) may have missed alerts: the page reloads, and the
  // server renders the newest again.
  feed.onerror = () => {
    state.textContent = 'reconnecting…';
    feed.close();
    setTimeout(() => location.reload(), 2000);
  };
  feed.addEventListener('alert', (ev) => {
    const a = JSON.parse(ev.data);
    const tr = document.createElement('tr');
    tr.className = a.action;
    tr.dataset.alert = a.id;
    const cells = [a.detected_at.replace('T', ' ').replace('Z', ''), a.action + (a.late ? ' (late)' : ''), a.score,
      a.account, a.payment, a.amount, a.merchant, (a.rules || []).join(', ')];
    for (const c of cells) {
      const td = document.createElement('td');
      td.textContent = String(c);
      tr.appendChild(td);
    }
    body.insertBefore(tr, body.firstChild);
    while (body.rows.length > 200) body.deleteRow(-1);
  });
})();
