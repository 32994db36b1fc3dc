// What every panel, query and dashboard of the mixin shares; the rows' files hold what
// differs. Queries write `SELECTOR` where _config.selector goes (see ../lib/render.libsonnet).
local render = import '../lib/render.libsonnet';

local datasource = { type: 'prometheus', uid: '${datasource}' };

{
  // The options and the fieldConfig.defaults.custom that most panels of a type share.
  defaults:: {
    timeseries: {
      options: {
        legend: {
          calcs: ['lastNotNull', 'max'],
          displayMode: 'table',
          placement: 'right',
          showLegend: true,
        },
        tooltip: { mode: 'multi', sort: 'desc' },
      },
      custom: {
        axisBorderShow: false,
        axisCenteredZero: false,
        axisColorMode: 'text',
        axisLabel: '',
        axisPlacement: 'auto',
        axisSoftMin: 0,
        barAlignment: 0,
        drawStyle: 'line',
        fillOpacity: 10,
        gradientMode: 'none',
        hideFrom: { legend: false, tooltip: false, viz: false },
        insertNulls: false,
        lineInterpolation: 'linear',
        lineWidth: 1,
        pointSize: 4,
        scaleDistribution: { type: 'linear' },
        showPoints: 'never',
        spanNulls: false,
        stacking: { group: 'A', mode: 'none' },
        thresholdsStyle: { mode: 'off' },
      },
    },
    stat: {
      options: {
        colorMode: 'background',
        graphMode: 'none',
        justifyMode: 'auto',
        orientation: 'auto',
        reduceOptions: { calcs: ['lastNotNull'], fields: '', values: false },
        showPercentChange: false,
        textMode: 'auto',
        wideLayout: true,
      },
    },
    table: {
      options: {
        cellHeight: 'sm',
        footer: { countRows: false, fields: '', reducer: ['sum'], show: false },
        showHeader: true,
      },
      custom: { align: 'auto', cellOptions: { type: 'auto' }, filterable: false, inspect: false },
    },
    'state-timeline': {
      options: {
        alignValue: 'left',
        legend: { displayMode: 'list', placement: 'bottom', showLegend: true },
        mergeValues: true,
        rowHeight: 0.9,
        showValue: 'never',
        tooltip: { mode: 'single', sort: 'none' },
      },
      custom: { fillOpacity: 80, hideFrom: { legend: false, tooltip: false, viz: false }, lineWidth: 0 },
    },
  },

  queries(config):: {
    local query(expr, legend, refId) = {
      datasource: datasource,
      expr: render.promql(config, expr),
      refId: refId,
      legendFormat: legend,
      editorMode: 'code',
    },
    // A value now (stat, table, bar gauge).
    instant(expr, legend, refId='A'):: query(expr, legend, refId) + { range: false, instant: true },
    // A series over the time range.
    range(expr, legend, refId='A'):: query(expr, legend, refId) + { range: true, instant: false },
  },

  // Days left on a certificate: red in the critical alert's range, orange in the warning's,
  // yellow within nine days of it (30 with the defaults), green beyond.
  certExpirySteps(config):: [
    { color: 'red', value: null },
    { color: 'orange', value: config.thresholds.certExpiryCriticalDays },
    { color: 'yellow', value: config.thresholds.certExpiryWarningDays },
    { color: 'green', value: config.thresholds.certExpiryWarningDays + 9 },
  ],

  row(id, title, y):: {
    type: 'row',
    title: title,
    collapsed: false,
    panels: [],
    id: id,
    gridPos: { h: 1, w: 24, x: 0, y: y },
  },

  panel(type, id, title, x, y, w, h):: {
    type: type,
    title: title,
    datasource: datasource,
    id: id,
    gridPos: { h: h, w: w, x: x, y: y },
  } + (
    if std.objectHas($.defaults, type) && std.objectHas($.defaults[type], 'options')
    then { options: $.defaults[type].options }
    else {}
  ),

  // A `query` variable: the values of `label` on a series of the exporter.
  labelVariable(config, name, label, description, series):: {
    local query = 'label_values(%s, %s)' % [render.promql(config, series), name],
    type: 'query',
    name: name,
    label: label,
    description: description,
    datasource: datasource,
    definition: query,
    query: { query: query, refId: 'PrometheusVariableQueryEditor-VariableQuery' },
    refresh: 2,
    regex: '',
    sort: 1,
    hide: 0,
    multi: true,
    includeAll: true,
    allValue: '.*',
    current: {},
    options: [],
  },

  datasourceVariable:: {
    type: 'datasource',
    name: 'datasource',
    label: 'Prometheus',
    query: 'prometheus',
    refresh: 1,
    regex: '',
    hide: 0,
    includeAll: false,
    multi: false,
    current: {},
    options: [],
  },

  dashboardLink(title, url, tooltip):: {
    title: title,
    type: 'link',
    icon: 'dashboard',
    url: url,
    tooltip: tooltip,
    includeVars: true,
    keepTime: true,
    targetBlank: false,
    asDropdown: false,
    tags: [],
  },

  runbookLink(config):: {
    title: 'Runbook',
    type: 'link',
    icon: 'doc',
    url: config.runbookUrl,
    tooltip: 'docs/runbook.md: one section per alert',
    includeVars: false,
    keepTime: false,
    targetBlank: true,
    asDropdown: false,
    tags: [],
  },

  dashboard(config, uid, title, description, links, variables, rows):: {
    __inputs: [],
    __requires: [],
    annotations: {
      list: [{
        builtIn: 1,
        datasource: { type: 'grafana', uid: '-- Grafana --' },
        enable: true,
        hide: true,
        iconColor: 'rgba(0, 211, 255, 1)',
        name: 'Annotations & Alerts',
        type: 'dashboard',
      }],
    },
    description: description,
    editable: true,
    fiscalYearStartMonth: 0,
    graphTooltip: 1,
    id: null,
    links: links,
    liveNow: false,
    panels: std.flattenArrays([row(config).panels for row in rows]),
    refresh: config.dashboardRefresh,
    schemaVersion: 39,
    tags: config.dashboardTags,
    templating: { list: variables },
    time: { from: config.dashboardFrom, to: 'now' },
    timepicker: {},
    timezone: '',
    title: title,
    uid: uid,
    version: 1,
    weekStart: '',
  },
}
