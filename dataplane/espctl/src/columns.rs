//! Tables for the terminal, as `column -t` lays them out: every column as wide as its widest
//! cell, left-aligned, two spaces apart, so each column starts at the same offset on every
//! row whatever the addresses' lengths. An empty cell is shown as `-`, so that every row has
//! a word in every column.

/// Lays out `header` and `rows` (each as long as `header`; extra cells are dropped).
pub(crate) fn render(header: &[&str], rows: &[Vec<String>]) -> String {
    let cell = |row: &[String], i: usize| -> String {
        match row.get(i).map(String::as_str) {
            None | Some("") => "-".to_owned(),
            Some(s) => s.to_owned(),
        }
    };
    let mut widths: Vec<usize> = header.iter().map(|h| h.chars().count()).collect();
    for row in rows {
        for (i, w) in widths.iter_mut().enumerate() {
            *w = (*w).max(cell(row, i).chars().count());
        }
    }
    let mut out = String::new();
    let mut line = |cells: Vec<String>| {
        let mut l = String::new();
        for (i, (c, w)) in cells.iter().zip(&widths).enumerate() {
            if i + 1 == cells.len() {
                l += c;
            } else {
                l += &format!("{c:<w$}  ");
            }
        }
        out += l.trim_end();
        out.push('\n');
    };
    line(header.iter().map(|h| (*h).to_owned()).collect());
    for row in rows {
        line((0..header.len()).map(|i| cell(row, i)).collect());
    }
    out
}

#[cfg(test)]
mod tests {
    use super::render;

    #[test]
    fn columns_start_together_and_empty_cells_show_a_dash() {
        let t = render(
            &["id", "src", "n"],
            &[
                vec!["1".into(), "2001:db8:1:2:3:4:5:6/128".into(), "7".into()],
                vec!["22".into(), "".into(), "1234".into()],
            ],
        );
        assert_eq!(
            t,
            "id  src                       n\n\
             1   2001:db8:1:2:3:4:5:6/128  7\n\
             22  -                         1234\n"
        );
    }
}
