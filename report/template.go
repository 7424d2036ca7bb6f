package report

// pageHTML is the report page. Everything is inline: no scripts, no fonts or
// style sheets from elsewhere; images are data URIs.
const pageHTML = `<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>{{.Title}}</title>
<style>
:root { --ink:#1f2430; --muted:#5b6270; --line:#dde1e7; --bg:#f4f5f7; --card:#fff; --accent:#0b5394; }
* { box-sizing: border-box; }
body { margin:0; background:var(--bg); color:var(--ink);
  font: 15px/1.5 "Segoe UI", "Helvetica Neue", Arial, "Liberation Sans", "DejaVu Sans", sans-serif; }
main { max-width: 1360px; margin: 0 auto; padding: 28px 32px 48px; }
header { border-bottom: 3px solid var(--accent); padding-bottom: 14px; margin-bottom: 18px; }
h1 { font-size: 28px; margin: 0 0 4px; letter-spacing: -0.01em; }
.subtitle { font-size: 17px; color: var(--muted); margin: 0 0 10px; }
.generated { font: 12.5px/1.55 "DejaVu Sans Mono", "Liberation Mono", Consolas, monospace; color: var(--muted); margin: 0; overflow-wrap: anywhere; }
nav { font-size: 14px; margin: 0 0 20px; color: var(--muted); }
nav a { color: var(--accent); text-decoration: none; margin-right: 16px; }
section { background: var(--card); border: 1px solid var(--line); border-radius: 6px; padding: 18px 22px 20px; margin: 0 0 22px; }
h2 { font-size: 20px; margin: 0 0 12px; }
h3 { font-size: 16px; margin: 18px 0 8px; }
.hint { color: var(--muted); font-size: 13.5px; margin: -6px 0 12px; }
.notes { background: #fff8e5; border-color: #f0d890; }
.notes ul { margin: 0; padding-left: 22px; }
.notes li { margin: 3px 0; overflow-wrap: anywhere; }
table { border-collapse: collapse; font-size: 14px; font-variant-numeric: tabular-nums; }
th, td { padding: 6px 12px; border-bottom: 1px solid var(--line); text-align: left; vertical-align: top; }
th { background: #eef1f5; font-weight: 600; border-bottom: 2px solid #c9ced6; white-space: nowrap; }
td.num, th.num { text-align: right; white-space: nowrap; }
tr.group td { border-top: 2px solid #c9ced6; }
tbody tr:nth-child(even) td { background: #fafbfc; }
.sd { color: var(--muted); font-size: 12.5px; }
td.best { font-weight: 700; }
td.best .sd { font-weight: 400; }
.scroll { overflow-x: auto; }
td.nowrap { white-space: nowrap; }
.grid { display: grid; grid-template-columns: repeat(2, minmax(0, 1fr)); gap: 18px; align-items: start; }
.grid.one { grid-template-columns: minmax(0, 1fr); }
figure { margin: 0; }
/* Map captions share a grid row (subgrid), so maps side by side line up. */
.maps figure { display: grid; grid-row: span 2; grid-template-rows: subgrid; row-gap: 6px; }
.maps { row-gap: 12px; }
figcaption { font-weight: 700; font-size: 15px; align-self: end; }
figure img { display: block; max-width: 100%; height: auto; border: 1px solid var(--line); border-radius: 4px; background: #fff; }
footer { color: var(--muted); font-size: 13px; margin-top: 10px; }
a { color: var(--accent); }
@media (max-width: 900px) { .grid { grid-template-columns: minmax(0, 1fr); } }
@media print { body { background: #fff; } section { break-inside: avoid; border: none; } }
</style>
</head>
<body>
<main>
<header>
<h1>{{.Title}}</h1>
{{with .Subtitle}}<p class="subtitle">{{.}}</p>{{end}}
{{with .GeneratedLines}}<p class="generated">{{range $i, $l := .}}{{if $i}}<br>{{end}}{{$l}}{{end}}</p>{{end}}
</header>
<nav>
{{if .Notes}}<a href="#notes">Notes</a>{{end}}
{{if .Rows}}<a href="#summary">Summary</a>{{end}}
{{if .Curves}}<a href="#curves">Label-fraction curves</a>{{end}}
{{if .Contribution}}<a href="#contribution">{{.ContributionHeading}}</a>{{end}}
{{if .Confusions}}<a href="#confusion">Confusion matrices</a>{{end}}
{{if .Maps}}<a href="#maps">Spatial maps</a>{{end}}
{{if .Tables}}<a href="#tables">Tables</a>{{end}}
{{with .ResultsCSV}}<a href="{{.}}">Results CSV</a>{{end}}
</nav>

{{if .Notes}}
<section class="notes" id="notes">
<h2>Notes</h2>
<ul>{{range .Notes}}<li>{{.}}</li>{{end}}</ul>
</section>
{{end}}

{{if .Rows}}
<section id="summary">
<h2>Summary</h2>
<p class="hint">Mean ± sd over seeds (n = number of seeds). Bold: best mean within each setting.</p>
<div class="scroll">
<table>
<thead><tr><th>method</th><th>setting</th><th class="num">n</th>{{range .Metrics}}<th class="num">{{metricName .}}</th>{{end}}</tr></thead>
<tbody>
{{range .Rows}}<tr{{if .FirstOfGroup}} class="group"{{end}}><td>{{.Name}}</td><td class="nowrap">{{.Setting}}</td><td class="num">{{.N}}</td>{{range .Cells}}<td class="num{{if .Best}} best{{end}}">{{.Mean}}{{with .SD}} <span class="sd">{{.}}</span>{{end}}</td>{{end}}</tr>
{{end}}</tbody>
</table>
</div>
</section>
{{end}}

{{if .Curves}}
<section id="curves">
<h2>Label-fraction curves</h2>
<p class="hint">Lines: mean over seeds; shaded bands: ± 1 sd.</p>
<div class="grid">
{{range .Curves}}<figure><img {{.Src}} width="{{.W}}" height="{{.H}}" alt="{{.Alt}}"></figure>
{{end}}</div>
</section>
{{end}}

{{with .Contribution}}
<section id="contribution">
<h2>{{$.ContributionHeading}}</h2>
<p class="hint">Bars: mean over seeds; whiskers: ± 1 sd.</p>
<div class="grid"><figure><img {{.Src}} width="{{.W}}" height="{{.H}}" alt="{{.Alt}}"></figure>
<div class="scroll"><table>
<thead><tr><th>method</th><th class="num">mean ± sd</th><th class="num">Δ vs best other</th></tr></thead>
<tbody>
{{range $.ContributionRows}}<tr><td>{{.Name}}{{with .Detail}}<br><span class="sd">{{.}}</span>{{end}}</td><td class="num">{{.Value}}</td><td class="num">{{.Delta}}</td></tr>
{{end}}</tbody>
</table></div></div>
</section>
{{end}}

{{if .Confusions}}
<section id="confusion">
<h2>Confusion matrices</h2>
<p class="hint">Rows: true class; columns: predicted class. Cell colour: fraction of the true class (row-normalised); numbers: spot counts and row percentages.</p>
<div class="grid">
{{range .Confusions}}<figure><img {{.Src}} width="{{.W}}" height="{{.H}}" alt="{{.Alt}}"></figure>
{{end}}</div>
</section>
{{end}}

{{if .Maps}}
<section id="maps">
<h2>Spatial maps</h2>
<p class="hint">Spots drawn at their true diameter over the H&amp;E image; legend counts are spots per class.</p>
<div class="grid maps">
{{range .Maps}}<figure><figcaption>{{.Alt}}</figcaption><img {{.Src}} width="{{.W}}" height="{{.H}}" alt="{{.Alt}}"></figure>
{{end}}</div>
</section>
{{end}}

{{if .Tables}}
<section id="tables">
<h2>Tables</h2>
{{range .Tables}}{{$num := .NumCol}}
{{with .Title}}<h3>{{.}}</h3>{{end}}
<div class="scroll">
<table>
{{with .Header}}<thead><tr>{{range $j, $h := .}}<th{{if isNum $num $j}} class="num"{{end}}>{{$h}}</th>{{end}}</tr></thead>{{end}}
<tbody>
{{range .Rows}}<tr>{{range $j, $c := .}}<td{{if isNum $num $j}} class="num"{{end}}>{{$c}}</td>{{end}}</tr>
{{end}}</tbody>
</table>
</div>
{{end}}
</section>
{{end}}

<footer>
{{with .ResultsCSV}}All runs, one row each: <a href="{{.}}">{{.}}</a>. {{end}}Self-contained report: images are embedded; no scripts, no network access.
</footer>
</main>
</body>
</html>
`
