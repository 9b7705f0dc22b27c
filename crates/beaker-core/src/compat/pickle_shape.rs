//! A pass over a pickle's opcodes that bounds the shape of what it would build, before
//! serde-pickle builds anything: the nesting depth and the number of values once shared
//! references are expanded. serde-pickle converts its values recursively and copies
//! every memo reference, so without this a small pickle could exhaust the stack (deep
//! nesting) or memory (a value that refers to itself twice, forty times over).
//!
//! It constructs nothing: each stack slot is only a `(depth, size)` pair. Opcodes outside
//! the plain-data subset (objects, persistent ids, extension codes, out-of-band buffers)
//! are refused here already.

/// The shape of one stack slot: nesting depth and number of values inside, expanded.
#[derive(Clone, Copy)]
struct Shape {
    depth: u32,
    size: u64,
}

const SCALAR: Shape = Shape { depth: 0, size: 1 };

/// Refuses a pickle whose values would nest deeper than `max_depth` or expand to more than
/// `max_values` values, or that uses an opcode outside the data subset.
pub(crate) fn check(pickle: &[u8], max_depth: u32, max_values: u64) -> Result<(), String> {
    let mut r = Cursor { bytes: pickle, pos: 0 };
    let mut stack: Vec<Shape> = Vec::new();
    let mut marks: Vec<Vec<Shape>> = Vec::new();
    let mut memo: std::collections::HashMap<u64, Shape> = std::collections::HashMap::new();
    let container = |items: &[Shape]| -> Result<Shape, String> {
        let depth = items.iter().map(|s| s.depth).max().unwrap_or(0) + 1;
        let size = items.iter().fold(1u64, |n, s| n.saturating_add(s.size));
        if depth > max_depth || size > max_values {
            return Err(format!("values nested deeper than {max_depth} or more than {max_values} values"));
        }
        Ok(Shape { depth, size })
    };
    loop {
        let op = r.byte()?;
        match op {
            b'.' => return Ok(()),
            b'\x80' => r.skip(1)?,
            b'\x95' => r.skip(8)?,
            b'(' => marks.push(std::mem::take(&mut stack)),
            b'N' | b'\x88' | b'\x89' => stack.push(SCALAR),
            b'K' => r.scalar(&mut stack, 1)?,
            b'M' => r.scalar(&mut stack, 2)?,
            b'J' => r.scalar(&mut stack, 4)?,
            b'G' => r.scalar(&mut stack, 8)?,
            b'U' | b'C' | b'\x8c' | b'\x8a' => {
                let n = r.uint(1)?;
                r.skip(n)?;
                stack.push(SCALAR);
            }
            b'T' | b'X' | b'B' | b'\x8b' => {
                let n = r.uint(4)?;
                r.skip(n)?;
                stack.push(SCALAR);
            }
            b'\x8d' | b'\x8e' => {
                let n = r.uint(8)?;
                r.skip(n)?;
                stack.push(SCALAR);
            }
            b'I' | b'L' | b'F' | b'S' | b'V' => {
                r.line()?;
                stack.push(SCALAR);
            }
            b'c' => {
                r.line()?;
                r.line()?;
                stack.push(SCALAR);
            }
            b'\x93' => {
                pop(&mut stack, 2)?;
                stack.push(SCALAR);
            }
            b']' | b'}' | b')' | b'\x8f' => stack.push(container(&[])?),
            b'a' => {
                let item = pop(&mut stack, 1)?;
                grow(&mut stack, &item, &container)?;
            }
            b's' => {
                let pair = pop(&mut stack, 2)?;
                grow(&mut stack, &pair, &container)?;
            }
            b'e' | b'u' | b'\x90' => {
                let items = pop_mark(&mut stack, &mut marks)?;
                grow(&mut stack, &items, &container)?;
            }
            b'l' | b't' | b'd' | b'\x91' => {
                let items = pop_mark(&mut stack, &mut marks)?;
                stack.push(container(&items)?);
            }
            b'\x85' | b'\x86' | b'\x87' => {
                let items = pop(&mut stack, usize::from(op - b'\x84'))?;
                stack.push(container(&items)?);
            }
            // The callable is a global (a scalar here); the result is no bigger than its
            // arguments (serde-pickle only applies the few builtins that make data).
            b'R' => {
                let args = pop(&mut stack, 2)?[1];
                stack.push(args);
            }
            b'0' => drop(pop(&mut stack, 1)?),
            b'1' => drop(pop_mark(&mut stack, &mut marks)?),
            b'2' => {
                let top = *stack.last().ok_or("stack underflow")?;
                stack.push(top);
            }
            b'p' => {
                let id = r.line_number()?;
                memo.insert(id, *stack.last().ok_or("stack underflow")?);
            }
            b'q' | b'r' => {
                let id = r.uint(if op == b'q' { 1 } else { 4 })? as u64;
                memo.insert(id, *stack.last().ok_or("stack underflow")?);
            }
            b'\x94' => {
                let id = memo.len() as u64;
                memo.insert(id, *stack.last().ok_or("stack underflow")?);
            }
            b'g' | b'h' | b'j' => {
                let id = match op {
                    b'g' => r.line_number()?,
                    b'h' => r.uint(1)? as u64,
                    _ => r.uint(4)? as u64,
                };
                stack.push(*memo.get(&id).ok_or("a reference to a value never memoized")?);
            }
            other => return Err(format!("pickle opcode {other:#04x} is outside the plain-data subset")),
        }
    }
}

fn pop(stack: &mut Vec<Shape>, n: usize) -> Result<Vec<Shape>, String> {
    if stack.len() < n {
        return Err("stack underflow".into());
    }
    Ok(stack.split_off(stack.len() - n))
}

fn pop_mark(stack: &mut Vec<Shape>, marks: &mut Vec<Vec<Shape>>) -> Result<Vec<Shape>, String> {
    let below = marks.pop().ok_or("a MARK is missing")?;
    Ok(std::mem::replace(stack, below))
}

/// Adds `items` to the container on top of the stack.
fn grow(
    stack: &mut [Shape],
    items: &[Shape],
    container: &impl Fn(&[Shape]) -> Result<Shape, String>,
) -> Result<(), String> {
    let top = stack.last_mut().ok_or("stack underflow")?;
    let mut all = items.to_vec();
    all.push(Shape { depth: top.depth.saturating_sub(1), size: top.size.saturating_sub(1) });
    *top = container(&all)?;
    Ok(())
}

struct Cursor<'a> {
    bytes: &'a [u8],
    pos: usize,
}

impl Cursor<'_> {
    fn take(&mut self, n: usize) -> Result<&[u8], String> {
        let end = self.pos.checked_add(n).filter(|&e| e <= self.bytes.len()).ok_or("truncated pickle")?;
        let out = &self.bytes[self.pos..end];
        self.pos = end;
        Ok(out)
    }
    fn byte(&mut self) -> Result<u8, String> {
        Ok(self.take(1)?[0])
    }
    fn skip(&mut self, n: usize) -> Result<(), String> {
        self.take(n).map(drop)
    }
    fn uint(&mut self, n: usize) -> Result<usize, String> {
        let raw = self.take(n)?;
        let v = raw.iter().rev().fold(0u64, |v, b| (v << 8) | u64::from(*b));
        usize::try_from(v).map_err(|_| "a length that does not fit".into())
    }
    fn scalar(&mut self, stack: &mut Vec<Shape>, n: usize) -> Result<(), String> {
        self.skip(n)?;
        stack.push(SCALAR);
        Ok(())
    }
    fn line(&mut self) -> Result<&[u8], String> {
        let rest = &self.bytes[self.pos..];
        let n = memchr::memchr(b'\n', rest).ok_or("truncated pickle")?;
        self.take(n + 1)
    }
    fn line_number(&mut self) -> Result<u64, String> {
        let line = self.line()?;
        std::str::from_utf8(&line[..line.len() - 1])
            .ok()
            .and_then(|s| s.trim().parse().ok())
            .ok_or_else(|| "a memo id that is not a number".into())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn nested(depth: usize) -> Vec<u8> {
        let mut p = b"\x80\x02".to_vec();
        p.extend(std::iter::repeat_n(b']', depth));
        p.extend(std::iter::repeat_n(b'a', depth - 1));
        p.push(b'.');
        p
    }

    #[test]
    fn depth_is_bounded() {
        assert!(check(&nested(10), 10, 1000).is_ok());
        assert!(check(&nested(11), 10, 1000).is_err());
        assert!(check(&nested(100_000), 64, u64::MAX).is_err());
    }

    #[test]
    fn shared_references_count_expanded() {
        // L = []; then 40 times: L = [L, L] through the memo: 2^40 values once expanded.
        let mut p = b"\x80\x02]q\x00".to_vec();
        for i in 0..40u8 {
            p.extend([b']', b'h', i, b'h', i, b'\x86', b'a', b'q', i + 1]);
        }
        p.push(b'.');
        let e = check(&p, 1000, 1_000_000).unwrap_err();
        assert!(e.contains("values"), "{e}");
    }

    #[test]
    fn objects_and_truncation_are_refused() {
        assert!(check(b"\x80\x02cos\nsystem\n(tb.", 32, 1000).is_err());
        assert!(check(b"\x80\x02X\x05\x00\x00\x00ab", 32, 1000).is_err());
        assert!(check(b"\x80\x02h\x07.", 32, 1000).is_err());
        assert!(check(b"e.", 32, 1000).is_err());
        assert!(check(b"\x80\x02}q\x00X\x01\x00\x00\x00aK\x01s.", 32, 1000).is_ok());
    }
}
