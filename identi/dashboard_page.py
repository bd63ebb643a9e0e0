"""The page of a feature dashboard (`identi.dashboard`): HTML, CSS and JavaScript, no dependencies.

The page reads ``data.js`` (``window.DASH``: the unit table as columns) with a ``<script src>``,
so it works from ``file://`` without a server (``fetch`` of local files does not). It builds the
table rows as one string and assigns it once (16k units render in well under a second), sorts in
JavaScript, and shows a unit's panel for ``#u=<unit>``, loading that unit's chunk
``units/<k>.js`` (``DASH_CHUNK(k, {...})``) on demand. When the first render is done the body
carries ``data-units``, ``data-rows`` (rows in the table), ``data-render-ms`` (building and laying out the table)
and ``data-ready-ms`` (time since navigation start). The table shows ``meta.page_rows`` rows at a
time (laying out 16k rows takes a browser seconds); sorting orders all units, and opening a unit
turns to its page.
"""

STYLE = """
body{font:13px/1.4 system-ui,sans-serif;margin:0;color:#222;background:#fafafa}
header{padding:10px 16px;background:#fff;border-bottom:1px solid #ddd}
h1{font-size:17px;margin:0 0 4px}
#summary{margin:0;color:#555}#pager{margin:0 0 6px}
#main{display:flex;align-items:flex-start}
#tablewrap{flex:1 1 auto;min-width:0;overflow-x:auto;padding:8px 16px}
table{border-collapse:collapse;width:100%;background:#fff}
th,td{padding:2px 6px;border-bottom:1px solid #eee;text-align:right;white-space:nowrap}
th{position:sticky;top:0;background:#f0f0f0;cursor:pointer;user-select:none}
th.sorted:after{content:" \\25be"}th.sorted.asc:after{content:" \\25b4"}
th.t,td.t{text-align:left}
tbody tr{cursor:pointer}tbody tr:hover{background:#eef4ff}tr.sel{background:#dbe8ff}
.bar{display:inline-block;height:8px;background:#4a7bd0;vertical-align:middle;margin-right:4px}
#panel{flex:0 0 520px;max-width:50vw;position:sticky;top:0;max-height:100vh;overflow:auto;
padding:10px 16px;background:#fff;border-left:1px solid #ddd;box-sizing:border-box}
#panel h2{font-size:16px;margin:4px 0}#panel h3{font-size:13px;margin:12px 0 4px;color:#444}
.ex{font-family:ui-monospace,monospace;font-size:12px;margin:3px 0;padding-left:60px;text-indent:-60px}
.ex .v{display:inline-block;width:60px;text-indent:0;color:#666}
.tok{padding:1px 2px;margin:0 1px;border-radius:2px}.tok.own{outline:2px solid #c33}
.imgs{display:flex;flex-wrap:wrap;gap:6px}
.imgs figure{margin:0;text-align:center;font-size:11px;color:#555}
.imgs img{width:72px;height:72px;image-rendering:pixelated;border:1px solid #ccc}
.close{float:right;cursor:pointer;color:#888}.muted{color:#888}
a{color:#2457b3;text-decoration:none}a:hover{text-decoration:underline}
"""

SCRIPT = r"""
(function () {
  'use strict';
  var D = window.DASH, body = document.body;
  var summary = document.getElementById('summary');
  if (!D) {
    summary.textContent = 'data.js did not load: regenerate the dashboard with identi.bin.dashboard';
    return;
  }
  var t0 = performance.now();
  var M = D.meta, C = D.cols, n = M.units;
  var tbody = document.getElementById('rows'), head = document.getElementById('head');
  var panel = document.getElementById('panel');
  function esc(s) {
    return String(s).replace(/[&<>"]/g, function (c) {
      return {'&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;'}[c];
    });
  }
  function fmt(x) {
    if (x === null || x === undefined) return '';
    if (x === 0) return '0';
    var a = Math.abs(x);
    return (a >= 1e5 || a < 1e-3) ? x.toExponential(2) : String(+x.toPrecision(3));
  }
  var concepts = (D.concepts || []).map(esc);
  function units(list) {
    if (!list || !list.length) return '';
    var s = list.slice(0, 6).join(' ');
    return list.length > 6 ? s + ' \u2026(' + list.length + ')' : s;
  }
  var maxRate = 0;
  for (var i = 0; i < n; i++) if (C.rate[i] > maxRate) maxRate = C.rate[i];
  var columns = [
    {label: 'unit', val: function (i) { return i; }, cell: function (i) { return '' + i; }},
    {label: 'firing rate', val: function (i) { return C.rate[i]; }, cell: function (i) {
      var w = maxRate > 0 ? Math.round(60 * C.rate[i] / maxRate) : 0;
      return '<span class="bar" style="width:' + w + 'px"></span>' + fmt(C.rate[i]);
    }},
    {label: 'mean when active', val: function (i) { return C.mean[i]; },
     cell: function (i) { return fmt(C.mean[i]); }},
    {label: 'max', val: function (i) { return C.max[i]; },
     cell: function (i) { return fmt(C.max[i]); }}
  ];
  if (C.concept) {
    columns.push({label: 'matched concept', text: true,
                  val: function (i) { return C.concept[i] < 0 ? null : C.concept[i]; },
                  cell: function (i) { return C.concept[i] < 0 ? '' : concepts[C.concept[i]]; }});
    columns.push({label: 'corr', val: function (i) { return C.concept[i] < 0 ? null : C.corr[i]; },
                  cell: function (i) { return C.concept[i] < 0 ? '' : fmt(C.corr[i]); }});
  }
  if (C.parents) {
    columns.push({label: 'graph parents', text: true,
                  val: function (i) { return C.parents[i].length || null; },
                  cell: function (i) { return units(C.parents[i]); }});
    columns.push({label: 'graph children', text: true,
                  val: function (i) { return C.children[i].length || null; },
                  cell: function (i) { return units(C.children[i]); }});
  }
  var order = new Array(n);
  for (i = 0; i < n; i++) order[i] = i;
  var sortCol = 0, asc = true, selected = -1, page = 0, PAGE = M.page_rows;
  var pager = document.getElementById('pager');
  function renderHead() {
    head.innerHTML = columns.map(function (c, k) {
      var cls = (c.text ? 't' : '') + (k === sortCol ? ' sorted' + (asc ? ' asc' : '') : '');
      return '<th data-k="' + k + '" class="' + cls + '">' + esc(c.label) + '</th>';
    }).join('');
  }
  function renderRows() {
    var first = page * PAGE, last = Math.min(n, first + PAGE), parts = new Array(last - first);
    for (var r = first; r < last; r++) {
      var u = order[r], s = '<tr data-u="' + u + '"' + (u === selected ? ' class="sel"' : '') + '>';
      for (var k = 0; k < columns.length; k++) {
        s += (columns[k].text ? '<td class="t">' : '<td>') + columns[k].cell(u) + '</td>';
      }
      parts[r - first] = s + '</tr>';
    }
    tbody.innerHTML = parts.join('');
    var pages = Math.ceil(n / PAGE);
    pager.hidden = pages < 2;
    pager.innerHTML = '<button data-p="' + (page - 1) + '"' + (page ? '' : ' disabled') +
        '>\u2039 previous</button> rows ' + (first + 1) + '\u2013' + last + ' of ' + n +
        ' (page ' + (page + 1) + ' of ' + pages + ') <button data-p="' + (page + 1) + '"' +
        (page + 1 < pages ? '' : ' disabled') + '>next \u203a</button>';
  }
  pager.addEventListener('click', function (e) {
    var b = e.target.closest('button');
    if (b && !b.disabled) { page = +b.getAttribute('data-p'); renderRows(); }
  });
  function sortBy(k) {
    asc = (k === sortCol) ? !asc : (k === 0);
    sortCol = k;
    var get = columns[k].val, keys = new Array(n);
    for (var i = 0; i < n; i++) keys[i] = get(i);
    var sign = asc ? 1 : -1;
    order.sort(function (a, b) {
      var x = keys[a], y = keys[b];
      if (x === y) return a - b;
      if (x === null) return 1;
      if (y === null) return -1;
      return x < y ? -sign : sign;
    });
    page = 0;
    renderHead();
    renderRows();
  }
  head.addEventListener('click', function (e) {
    var th = e.target.closest('th');
    if (th) sortBy(+th.getAttribute('data-k'));
  });
  tbody.addEventListener('click', function (e) {
    var tr = e.target.closest('tr');
    if (tr) location.hash = 'u=' + tr.getAttribute('data-u');
  });

  // The unit panel.
  var chunks = {}, loading = {};
  window.DASH_CHUNK = function (k, data) { chunks[k] = data; };
  function loadChunk(k, done) {
    if (chunks[k]) return done();
    if (loading[k]) return loading[k].push(done);
    loading[k] = [done];
    var s = document.createElement('script');
    s.src = 'units/' + k + '.js';
    s.onload = function () { var f = loading[k]; delete loading[k]; f.forEach(function (g) { g(); }); };
    s.onerror = function () {
      delete loading[k];
      panel.hidden = false;
      panel.innerHTML = '<p>units/' + k + '.js did not load: regenerate the dashboard.</p>';
    };
    document.head.appendChild(s);
  }
  function unitLink(u, base) {
    return '<a href="' + (base ? esc(base) : '') + '#u=' + u + '">' + u + '</a>';
  }
  function histogram(h, hmax) {
    var W = 500, H = 110, pad = 18, total = 0, top = 0;
    h.forEach(function (c) { total += c; if (c > top) top = c; });
    if (!total) return '<p class="muted">never active on these rows</p>';
    var bw = (W - 2 * pad) / h.length, s = '<svg width="' + W + '" height="' + (H + 16) +
        '" role="img" aria-label="activation histogram">';
    h.forEach(function (c, b) {
      var bh = top ? (H - pad) * c / top : 0;
      s += '<rect x="' + (pad + b * bw).toFixed(1) + '" y="' + (H - bh).toFixed(1) + '" width="' +
           Math.max(bw - 1, 1).toFixed(1) + '" height="' + bh.toFixed(1) + '" fill="#4a7bd0">' +
           '<title>' + c + ' rows</title></rect>';
    });
    s += '<line x1="' + pad + '" x2="' + (W - pad) + '" y1="' + H + '" y2="' + H +
         '" stroke="#999"/><text x="' + pad + '" y="' + (H + 13) + '" font-size="11">0</text>' +
         '<text x="' + (W - pad) + '" y="' + (H + 13) + '" font-size="11" text-anchor="end">' +
         fmt(hmax) + '</text><text x="' + pad + '" y="11" font-size="11" fill="#555">max ' +
         top + ' rows per bin</text></svg>';
    return s;
  }
  function example(e, umax) {
    var head = '<span class="v">' + fmt(e.v) + '</span>';
    if (e.t) {
      var s = '';
      for (var j = 0; j < e.t.length; j++) {
        var a = e.a[j], tok = esc(D.vocab[e.t[j]] !== undefined ? D.vocab[e.t[j]] : e.t[j]);
        var style = a > 0 ? ' style="background:rgba(255,110,0,' + (a / 100).toFixed(2) + ')"' : '';
        var title = a >= 0 ? ' title="' + fmt(a / 100 * umax) + '"' : '';
        s += '<span class="tok' + (j === e.c ? ' own' : '') + '"' + style + title + '>' + tok +
             '</span>';
      }
      return '<div class="ex">' + head + s + ' <span class="muted">row ' + e.r + '</span></div>';
    }
    if (e.img) {
      return '<figure><img src="' + esc(e.img) + '" alt="row ' + e.r + '"><figcaption>' +
             fmt(e.v) + '</figcaption></figure>';
    }
    return '<div class="ex">' + head + 'row ' + e.r + '</div>';
  }
  function showUnit(u) {
    var k = Math.floor(u / M.chunk), at = order.indexOf(u);
    if (Math.floor(at / PAGE) !== page) { page = Math.floor(at / PAGE); renderRows(); }
    loadChunk(k, function () {
      var d = chunks[k][u - k * M.chunk], G = M.graph || {};
      var s = '<span class="close" id="close">close \u2715</span><h2>Unit ' + u + '</h2>' +
          '<p>firing rate ' + fmt(C.rate[u]) + ' \u00b7 mean when active ' + fmt(C.mean[u]) +
          ' \u00b7 max ' + fmt(C.max[u]) + '</p>';
      if (C.concept) {
        s += '<p>matched concept: ' + (C.concept[u] < 0 ? '<span class="muted">none</span>' :
             concepts[C.concept[u]] + ' (corr ' + fmt(C.corr[u]) + ', held-out half)');
        if (d.best) s += ' \u00b7 most correlated: ' + concepts[d.best[0]] + ' (' + fmt(d.best[1]) + ')';
        s += '</p>';
      }
      if (C.parents) {
        s += '<p>graph parents' + (G.parent_site ? ' (' + esc(G.parent_site) + ')' : '') + ': ' +
             (C.parents[u].map(function (j) { return unitLink(j, G.parent_link); }).join(' ') ||
              '<span class="muted">none</span>') + '<br>graph children' +
             (G.child_site ? ' (' + esc(G.child_site) + ')' : '') + ': ' +
             (C.children[u].map(function (j) { return unitLink(j, G.child_link); }).join(' ') ||
              '<span class="muted">none</span>') + '</p>';
      }
      s += '<h3>Activation when active</h3>' + histogram(d.h, C.max[u]);
      s += '<h3>Nearest units by decoder cosine</h3><p>' + d.nn.map(function (p) {
        return unitLink(p[0]) + ' <span class="muted">(' + fmt(p[1]) + ')</span>';
      }).join(' \u00b7 ') + '</p>';
      s += '<h3>Top activating examples</h3>';
      if (!d.top.length) s += '<p class="muted">none</p>';
      else if (M.contexts === 'image') {
        s += '<div class="imgs">' + d.top.map(function (e) { return example(e, C.max[u]); }).join('') + '</div>';
      } else s += d.top.map(function (e) { return example(e, d.top[0].v); }).join('');
      panel.innerHTML = s;
      panel.hidden = false;
      document.getElementById('close').onclick = function () { location.hash = ''; };
      var old = tbody.querySelector('tr.sel');
      if (old) old.className = '';
      var tr = tbody.querySelector('tr[data-u="' + u + '"]');
      if (tr) tr.className = 'sel';
      selected = u;
      body.setAttribute('data-unit', u);
    });
  }
  function route() {
    var m = /^#u=(\d+)$/.exec(location.hash);
    if (m && +m[1] < n) showUnit(+m[1]);
    else { panel.hidden = true; selected = -1; }
  }
  window.addEventListener('hashchange', route);

  document.title = M.title;
  document.getElementById('title').textContent = M.title;
  summary.textContent = n + ' units \u00b7 ' + M.rows + ' rows of ' + M.data +
      (M.contexts ? ' \u00b7 ' + M.contexts + ' contexts' : '') +
      (M.mcc !== null ? ' \u00b7 MCC ' + fmt(M.mcc) : '') + ' \u00b7 click a column to sort, a row for its unit';
  renderHead();
  renderRows();
  void tbody.offsetHeight;  // Lay the table out, so that the times below include it.
  body.setAttribute('data-rows', tbody.rows.length);
  body.setAttribute('data-units', n);
  body.setAttribute('data-render-ms', (performance.now() - t0).toFixed(1));
  body.setAttribute('data-ready-ms', performance.now().toFixed(1));
  route();
})();
"""

PAGE = """<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>identi dashboard</title>
<meta name="viewport" content="width=device-width, initial-scale=1">
<style>{style}</style></head>
<body>
<header><h1 id="title">identi dashboard</h1><p id="summary">loading\u2026</p></header>
<div id="main"><div id="tablewrap"><p id="pager" hidden></p><table><thead><tr id="head"></tr></thead>
<tbody id="rows"></tbody></table></div><aside id="panel" hidden></aside></div>
<script src="data.js"></script>
<script>{script}</script>
</body></html>
"""

SITES_PAGE = """<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>{title}</title><style>{style}</style></head>
<body><header><h1>{title}</h1><p id="summary">one dashboard per SAE</p></header>
<div id="tablewrap"><table><thead><tr><th class="t">site</th><th>units</th><th>rows</th>
<th>MCC</th><th class="t">contexts</th></tr></thead><tbody>{rows}</tbody></table></div></body></html>
"""


def page() -> str:
  """The dashboard's index.html."""
  return PAGE.format(style=STYLE, script=SCRIPT)
