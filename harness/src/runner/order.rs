//! The order features start in. Cucumber starts scenarios in the order its parser yields features, up to the
//! concurrency limit; a slow feature that sorts late (network faults: ~5 s scenarios) then runs alone at the end and
//! sets the suite's wall time. Features tagged `@slow` start first; the rest keep their file-name order.

use std::path::Path;

use cucumber::gherkin::Feature;
use cucumber::parser::{self, Parser};
use futures::stream::{self, StreamExt as _};

/// The tag that starts a feature first.
pub const SLOW_TAG: &str = "slow";

/// Cucumber's own parser, with `@slow` features moved to the front.
#[derive(Clone, Debug, Default)]
pub struct SlowFirst;

impl<I: AsRef<Path>> Parser<I> for SlowFirst {
    type Cli = parser::basic::Cli;
    type Output = stream::Iter<std::vec::IntoIter<parser::Result<Feature>>>;

    fn parse(self, input: I, cli: Self::Cli) -> Self::Output {
        // The basic parser reads the files before it returns: its stream is ready at once.
        let parsed: Vec<_> =
            futures::executor::block_on(parser::Basic::new().parse(input, cli).collect());
        stream::iter(slow_first(parsed))
    }
}

fn is_slow(feature: &parser::Result<Feature>) -> bool {
    feature
        .as_ref()
        .is_ok_and(|f| f.tags.iter().any(|t| t == SLOW_TAG))
}

/// `@slow` features first, each group in the order given (stable).
fn slow_first(mut features: Vec<parser::Result<Feature>>) -> Vec<parser::Result<Feature>> {
    features.sort_by_key(|f| !is_slow(f));
    features
}

#[cfg(test)]
mod tests {
    use super::*;

    fn feature(name: &str, tags: &[&str]) -> parser::Result<Feature> {
        let tags = tags
            .iter()
            .map(|t| format!("@{t}"))
            .collect::<Vec<_>>()
            .join(" ");
        let text = format!("{tags}\nFeature: {name}\n  Scenario: s\n    Given x\n");
        Ok(Feature::parse(text, cucumber::gherkin::GherkinEnv::default()).expect("a feature"))
    }

    #[test]
    fn slow_features_start_first_and_the_rest_keep_their_order() {
        let names = |fs: &[parser::Result<Feature>]| {
            fs.iter()
                .map(|f| f.as_ref().map(|f| f.name.clone()).unwrap_or_default())
                .collect::<Vec<_>>()
        };
        let ordered = slow_first(vec![
            feature("a", &[]),
            feature("b", &["faults", "slow"]),
            feature("c", &["gpio"]),
            feature("d", &["slow"]),
        ]);
        assert_eq!(names(&ordered), ["b", "d", "a", "c"]);
    }
}
