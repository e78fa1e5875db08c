//! `index.html` of a collected grid: every merged table and figure, and a link to every run,
//! in one page that opens from disk (relative links, no script from elsewhere). A short script
//! marks any image the browser could not show.

use std::path::Path;

use super::across_seeds::{html_escape, GroupReport};
use crate::util::tables::FileError;

/// A group of runs that differ only in their seeds.
pub struct IndexGroup {
    /// Its settings (what its runs share), or "all runs".
    pub title: String,
    /// Its folder, relative to the index.
    pub folder: String,
    pub report: GroupReport,
    /// Per run: its settings and its folder, relative to the index.
    pub runs: Vec<(String, String)>,
}

const STYLE: &str = "body{font-family:sans-serif;max-width:1200px;margin:2em auto;padding:0 1em}\
table{border-collapse:collapse;margin:1em 0;font-size:0.85em}\
th,td{border:1px solid #bbb;padding:0.2em 0.5em;text-align:right}\
caption{text-align:left;font-style:italic;padding:0.3em 0}\
img{max-width:100%;border:1px solid #ddd;margin:0.5em 0}\
p.missing{color:#b00;font-weight:bold}";

/// Marks the images that are not shown (`data-images` on the body says which, or `all shown`).
const CHECK: &str = "window.addEventListener('load',function(){\
var bad=Array.prototype.filter.call(document.images,function(i){return !i.complete||i.naturalWidth===0;});\
document.body.setAttribute('data-images',bad.length?'missing':'all shown');\
bad.forEach(function(i){var p=document.createElement('p');p.className='missing';\
p.textContent='not shown: '+i.getAttribute('src');i.parentNode.insertBefore(p,i);});});";

/// Writes `<out>/index.html`.
pub fn write_index(
    out: &Path,
    title: &str,
    stamp: &str,
    groups: &[IndexGroup],
) -> Result<(), FileError> {
    let mut body = format!(
        "<h1>{}</h1>\n<p>{}</p>\n",
        html_escape(title),
        html_escape(stamp.trim())
    );
    for group in groups {
        body.push_str(&format!("<h2>{}</h2>\n", html_escape(&group.title)));
        for table in &group.report.tables {
            body.push_str(&format!(
                "<h3>{name}</h3>\n{}<p><a href=\"{folder}/{name}.csv\">CSV</a> · <a href=\"{folder}/{name}.md\">Markdown</a> · <a href=\"{folder}/{name}.tex\">LaTeX</a> · <a href=\"{folder}/{name}.parquet\">Parquet</a></p>\n",
                table.html(),
                name = table.name,
                folder = group.folder,
            ));
        }
        for figure in &group.report.figures {
            let name = figure.file_name().unwrap_or_default().to_string_lossy();
            body.push_str(&format!(
                "<p><img src=\"{folder}/{name}.png\" alt=\"{name}\"><br><a href=\"{folder}/{name}.svg\">SVG</a></p>\n",
                folder = group.folder
            ));
        }
        body.push_str("<h3>runs</h3>\n<ul>\n");
        for (label, link) in &group.runs {
            body.push_str(&format!(
                "<li><a href=\"{link}/\">{}</a></li>\n",
                html_escape(label)
            ));
        }
        body.push_str("</ul>\n");
    }
    let html = format!(
        "<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n<title>{}</title>\n<style>{STYLE}</style>\n</head>\n<body>\n{body}<script>{CHECK}</script>\n</body>\n</html>\n",
        html_escape(title)
    );
    let path = out.join("index.html");
    crate::util::atomic_file::write(&path, html.as_bytes()).map_err(|e| FileError::new(&path, e))
}
