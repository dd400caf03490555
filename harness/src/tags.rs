//! Tag expressions for `hil run --tags`: `@a`, `not @a`, `@a and @b`, `@a or @b`, parentheses.

use anyhow::{bail, Result};

#[derive(Debug, Clone, PartialEq)]
pub enum Expr {
    Tag(String),
    Not(Box<Expr>),
    And(Box<Expr>, Box<Expr>),
    Or(Box<Expr>, Box<Expr>),
}

impl Expr {
    pub fn parse(text: &str) -> Result<Expr> {
        let tokens: Vec<String> = text
            .replace('(', " ( ")
            .replace(')', " ) ")
            .split_whitespace()
            .map(str::to_string)
            .collect();
        let mut pos = 0;
        let e = or(&tokens, &mut pos)?;
        if pos != tokens.len() {
            bail!("tag expression '{text}': unexpected '{}'", tokens[pos]);
        }
        Ok(e)
    }

    /// True when the tags (without `@`) satisfy the expression.
    pub fn eval(&self, tags: &[String]) -> bool {
        match self {
            Expr::Tag(t) => tags.iter().any(|x| x == t),
            Expr::Not(e) => !e.eval(tags),
            Expr::And(a, b) => a.eval(tags) && b.eval(tags),
            Expr::Or(a, b) => a.eval(tags) || b.eval(tags),
        }
    }
}

fn or(t: &[String], pos: &mut usize) -> Result<Expr> {
    let mut left = and(t, pos)?;
    while t.get(*pos).map(String::as_str) == Some("or") {
        *pos += 1;
        left = Expr::Or(Box::new(left), Box::new(and(t, pos)?));
    }
    Ok(left)
}

fn and(t: &[String], pos: &mut usize) -> Result<Expr> {
    let mut left = unary(t, pos)?;
    while t.get(*pos).map(String::as_str) == Some("and") {
        *pos += 1;
        left = Expr::And(Box::new(left), Box::new(unary(t, pos)?));
    }
    Ok(left)
}

fn unary(t: &[String], pos: &mut usize) -> Result<Expr> {
    let Some(tok) = t.get(*pos) else {
        bail!("tag expression ends too early")
    };
    *pos += 1;
    match tok.as_str() {
        "not" => Ok(Expr::Not(Box::new(unary(t, pos)?))),
        "(" => {
            let e = or(t, pos)?;
            if t.get(*pos).map(String::as_str) != Some(")") {
                bail!("tag expression: missing ')'");
            }
            *pos += 1;
            Ok(e)
        }
        tag if tag.starts_with('@') && tag.len() > 1 => Ok(Expr::Tag(tag[1..].to_string())),
        other => bail!("tag expression: expected @tag, 'not' or '(' but found '{other}'"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tags(t: &[&str]) -> Vec<String> {
        t.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn evaluates() {
        let e = Expr::parse("@gpio and not (@slow or @browser)").unwrap();
        assert!(e.eval(&tags(&["gpio"])));
        assert!(!e.eval(&tags(&["gpio", "slow"])));
        assert!(!e.eval(&tags(&["faults"])));
        assert!(Expr::parse("@a or @b and @c").unwrap().eval(&tags(&["a"])));
    }

    #[test]
    fn rejects_garbage() {
        assert!(Expr::parse("gpio").is_err());
        assert!(Expr::parse("@a and").is_err());
        assert!(Expr::parse("(@a").is_err());
        assert!(Expr::parse("@a @b").is_err());
    }
}
