// The admin port's live page (GET /): every node's fill as a bar with its keys, and
// requests/s, errors/s and moves in progress, read from /stats and /nodes every
// second (the rates are headroom's, over its last whole second). One file, no external
// assets; narrow screens wrap the figures.
#pragma once

#include <string_view>

namespace headroom::proxy {

inline constexpr std::string_view kAdminPage = R"(<!doctype html>
<html lang="en"><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>headroom</title>
<style>
body{font:15px/1.4 system-ui,sans-serif;margin:0;padding:16px;background:#f6f7f9;color:#1d2330}
h1{font-size:20px;margin:0 0 12px}
.figs{display:flex;flex-wrap:wrap;gap:12px;margin-bottom:16px}
.fig{background:#fff;border-radius:8px;padding:10px 14px;min-width:140px;flex:1 1 140px}
.fig b{display:block;font-size:22px}
.node{background:#fff;border-radius:8px;padding:10px 14px;margin-bottom:10px}
.bar{height:14px;background:#e3e6ec;border-radius:7px;overflow:hidden;margin:6px 0}
.bar i{display:block;height:100%;background:#3b82f6}
.node.down .bar i{background:#d33}.node.draining .bar i{background:#e7a11a}
small{color:#5b6475}
</style></head><body>
<h1>headroom</h1>
<div class="figs">
<div class="fig">requests/s<b id="rps">-</b></div>
<div class="fig">errors/s<b id="eps">-</b></div>
<div class="fig">clients<b id="clients">-</b></div>
<div class="fig">moving now<b id="moving">-</b></div>
<div class="fig">keys moved<b id="moved">-</b></div>
</div>
<div id="nodes"></div>
<script>
function one(s, name) { const v = s[name]; return typeof v === 'number' ? v : 0; }
function mb(b) { return (b / 1048576).toFixed(1) + ' MB'; }
async function tick() {
  try {
    const [s, nodes] = await Promise.all([fetch('/stats').then(r => r.json()), fetch('/nodes').then(r => r.json())]);
    document.getElementById('rps').textContent = Math.round(one(s, 'headroom_commands_per_second'));
    document.getElementById('eps').textContent = Math.round(one(s, 'headroom_errors_per_second'));
    document.getElementById('clients').textContent = one(s, 'headroom_clients');
    document.getElementById('moving').textContent = one(s, 'headroom_moving_entries');
    document.getElementById('moved').textContent = one(s, 'headroom_moved_entries_total');
    const box = document.getElementById('nodes');
    box.innerHTML = '';
    for (const n of nodes) {
      const d = document.createElement('div');
      d.className = 'node' + (n.state !== 'up' ? ' down' : '') + (n.draining ? ' draining' : '');
      d.dataset.node = n.name;
      const pct = Math.min(100, n.fill * 100);
      d.innerHTML = '<b></b> <small></small><div class="bar"><i></i></div><span class="keys"></span> keys, ' +
        '<span class="used"></span> of <span class="size"></span>';
      d.querySelector('b').textContent = n.name;
      d.querySelector('small').textContent = n.address + (n.draining ? ' (draining)' : '') + (n.state !== 'up' ? ' (down)' : '');
      d.querySelector('i').style.width = pct.toFixed(1) + '%';
      d.querySelector('.keys').textContent = n.keys;
      d.querySelector('.used').textContent = mb(n.used_memory);
      d.querySelector('.size').textContent = mb(n.size);
      box.appendChild(d);
    }
    // For tests (and curious eyes): does the page fit the window?
    document.body.dataset.scrollWidth = document.documentElement.scrollWidth;
    document.body.dataset.innerWidth = window.innerWidth;
    document.body.dataset.updates = (Number(document.body.dataset.updates || 0) + 1);
  } catch (e) { /* the next second tries again */ }
}
tick();
setInterval(tick, 1000);
</script></body></html>
)";

}  // namespace headroom::proxy
