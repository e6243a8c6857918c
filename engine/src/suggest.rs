//! "Did you mean" suggestions for misspelt names.

/// The candidate closest to `name`, if one is close enough to be a typo.
pub(crate) fn closest<'c, I, S>(name: &str, candidates: I) -> Option<&'c str>
where
    I: IntoIterator<Item = &'c S>,
    S: AsRef<str> + ?Sized + 'c,
{
    candidates
        .into_iter()
        .map(|candidate| candidate.as_ref())
        .filter(|candidate| *candidate != name)
        .map(|candidate| (strsim::jaro_winkler(name, candidate), candidate))
        .filter(|(score, candidate)| *score >= 0.85 || strsim::levenshtein(name, candidate) <= 2.min(name.len() / 2))
        .max_by(|a, b| a.0.total_cmp(&b.0))
        .map(|(_, candidate)| candidate)
}

#[cfg(test)]
mod tests {
    use super::closest;

    #[test]
    fn suggests_close_names_only() {
        let known = ["depends_on".to_owned(), "timeout".to_owned()];
        assert_eq!(closest("depend_on", &known), Some("depends_on"));
        assert_eq!(closest("timout", &known), Some("timeout"));
        assert_eq!(closest("colour", &known), None);
        assert_eq!(closest("x", &known), None);
    }
}
