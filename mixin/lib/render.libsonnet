// How the alert sources turn into rule fields. The sources write `SELECTOR` where the
// configured label matchers go, in expressions and in the descriptions' queries: one
// spelling for both, where jsonnet's `%(selector)s` would need every Go `%q` doubled.
local marker = 'SELECTOR';

// The selector inside a Go template's double-quoted `printf` format: `\` and `"` escaped
// for the string, `%` doubled for printf.
local inGoPrintf(selector) =
  std.strReplace(
    std.strReplace(std.strReplace(selector, '\\', '\\\\'), '"', '\\"'),
    '%',
    '%%'
  );

// A ||| block's lines joined by one space, as YAML's `>-` folds them: descriptions are one
// line to Alertmanager, written on several here.
local fold(text) =
  std.join(' ', std.filter(function(line) line != '', std.split(text, '\n')));

{
  assertSelector(selector)::
    assert std.isString(selector) && std.length(std.stripChars(selector, ' ')) > 0 :
           '_config.selector must be PromQL label matchers such as job="cms-xmpp-exporter" (it also stands alone: up{<selector>})';
    selector,

  // An expression, without its block's last newline.
  promql(config, expr)::
    std.strReplace(std.rstripChars(expr, '\n'), marker, $.assertSelector(config.selector)),

  // A summary or description: folded, the selector placed in its queries.
  template(config, text)::
    std.strReplace(fold(text), marker, inGoPrintf($.assertSelector(config.selector))),

  runbook(config, alert):: config.runbookUrl + '#' + std.asciiLower(alert),

  // The three with the mixin's _config given once: `local alert = render.bind($._config)`.
  bind(config):: {
    promql(expr):: $.promql(config, expr),
    template(text):: $.template(config, text),
    runbook(name):: $.runbook(config, name),
  },
}
