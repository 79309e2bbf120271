"""The report page's style sheet and its one script, written inline into every page (nothing is
loaded from anywhere). The script only adds a tooltip with the model's top guesses to the
surprisal text, for hover and for keyboard focus (arrow keys move it); the page reads without it.
Its hash goes into the page's Content Security Policy (page.py), so no other script can run."""

CSS = """
body{font:15px/1.45 system-ui,-apple-system,"Segoe UI",Roboto,sans-serif;color:#1b1b1b;margin:0 auto;max-width:1040px;padding:0 20px 40px}
h1{font-size:26px;margin:22px 0 2px}h2{font-size:21px;margin:34px 0 4px;border-bottom:1px solid #ddd}h3{font-size:16px;margin:20px 0 6px}
.lead{color:#444;margin:2px 0 12px}.sub,.note{color:#555;font-size:13px}nav a{margin-right:14px}
.warn{background:#fff4e5;border-left:4px solid #d55e00;padding:6px 10px;margin:10px 0}
.charts{display:flex;flex-wrap:wrap;gap:8px 18px}svg{max-width:100%;height:auto;font:11px system-ui,sans-serif}
svg .plot{fill:none;stroke:#999}svg .grid{stroke:#eee}svg .tick{fill:#555}svg .label{fill:#333}svg .title{font-weight:600;fill:#222}
svg .series,svg .key{fill:none;stroke-width:1.8}svg .legend{fill:#222}.scatter circle{fill:var(--c);fill-opacity:.35}
table{border-collapse:collapse;font-size:13px;margin:6px 0 12px}td,th{padding:2px 10px 2px 0;text-align:right;vertical-align:top}
th{font-weight:600;border-bottom:1px solid #ccc}td:first-child,th:first-child{text-align:left}.settings td{text-align:left}.settings th{text-align:left}.settings .style{vertical-align:middle}
.tx,.sx,pre{font:13px/1.55 ui-monospace,"SFMono-Regular",Menlo,Consolas,monospace;white-space:pre-wrap;word-break:break-all;margin:4px 0 10px}
pre{background:#f6f6f6;padding:6px 8px}.samples{padding-left:0;list-style:none}.samples .meta{font-size:13px;color:#444}
.g0{color:#999}.sx i[title],.sx i[data-g]{cursor:help}.sx i:focus{outline:2px solid #000}i{font-style:normal}
.scale{font-size:12px;color:#444;margin:2px 0 10px}.scale .bar i{display:inline-block;width:16px;height:11px;vertical-align:middle}
.row .lab{font-size:12px;color:#333}details{margin:6px 0}summary{cursor:pointer}
#tip{position:absolute;background:#222;color:#fff;font:12px/1.4 ui-monospace,Menlo,monospace;white-space:pre;padding:4px 7px;border-radius:3px;pointer-events:none;z-index:9}
"""

SCRIPT = """
(function(){
var tip=document.getElementById('tip');
document.querySelectorAll('.sx i[title]').forEach(function(c){c.setAttribute('data-g',c.title);c.removeAttribute('title');});
function show(c){tip.textContent=c.getAttribute('data-g');var r=c.getBoundingClientRect();
tip.style.left=(r.left+scrollX)+'px';tip.style.top=(r.bottom+scrollY+4)+'px';tip.hidden=false;}
function char(e){return e.target.closest?e.target.closest('.sx i[data-g]'):null;}
document.addEventListener('mouseover',function(e){var c=char(e);if(c)show(c);});
document.addEventListener('mouseout',function(e){if(char(e))tip.hidden=true;});
document.addEventListener('focusin',function(e){var c=char(e);if(c)show(c);
else if(e.target.classList.contains('sx')&&!e.target.contains(e.relatedTarget)){var box=e.target;setTimeout(function(){move(box,null,1);},0);}});
document.addEventListener('focusout',function(e){if(char(e))tip.hidden=true;});
function move(box,from,d){var all=box.querySelectorAll('i[data-g]');var i=Array.prototype.indexOf.call(all,from);
var to=all[Math.max(0,Math.min(all.length-1,from?i+d:0))];if(to){to.tabIndex=-1;to.focus();}}
document.addEventListener('keydown',function(e){var c=char(e);if(!c)return;
var d={ArrowRight:1,ArrowLeft:-1,ArrowDown:40,ArrowUp:-40}[e.key];
if(d){e.preventDefault();move(c.closest('.sx'),c,d);}});
})();
"""
