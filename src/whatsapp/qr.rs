//! The login QR code, rendered from WhatsApp Web's `data-ref` string (never a screenshot): a PNG
//! for the API and the dashboard, Unicode blocks for the log.

use qrcode::{Color, EcLevel, QrCode};

/// Pixels per QR module, and the quiet zone in modules.
const SCALE: usize = 6;
const QUIET: usize = 4;

fn code(data: &str) -> Option<QrCode> {
    QrCode::with_error_correction_level(data.as_bytes(), EcLevel::L).ok()
}

/// A grayscale PNG of the code.
pub fn png(data: &str) -> Option<Vec<u8>> {
    let code = code(data)?;
    let width = code.width();
    let colors = code.to_colors();
    let side = (width + 2 * QUIET) * SCALE;
    let mut pixels = vec![255u8; side * side];
    for y in 0..width {
        for x in 0..width {
            if colors[y * width + x] == Color::Dark {
                for dy in 0..SCALE {
                    let row = (y + QUIET) * SCALE + dy;
                    let start = row * side + (x + QUIET) * SCALE;
                    pixels[start..start + SCALE].fill(0);
                }
            }
        }
    }
    let mut out = Vec::new();
    {
        let mut enc = png::Encoder::new(&mut out, side as u32, side as u32);
        enc.set_color(png::ColorType::Grayscale);
        enc.set_depth(png::BitDepth::Eight);
        let mut w = enc.write_header().ok()?;
        w.write_image_data(&pixels).ok()?;
    }
    Some(out)
}

/// The code as lines of Unicode half blocks (two modules per character row), drawn light on
/// dark so that it reads on a dark terminal.
pub fn unicode(data: &str) -> Option<String> {
    use qrcode::render::unicode::Dense1x2;
    Some(
        code(data)?
            .render::<Dense1x2>()
            .dark_color(Dense1x2::Light)
            .light_color(Dense1x2::Dark)
            .quiet_zone(true)
            .build(),
    )
}

#[cfg(test)]
mod tests {
    #[test]
    fn png_and_unicode_render_a_whatsapp_ref() {
        let data = "2@abcDEF123==,noiseKey+/=,identityKey+/=,advSecret+/=";
        let png = super::png(data).expect("png");
        assert_eq!(&png[1..4], b"PNG");
        let text = super::unicode(data).expect("unicode");
        let lines: Vec<&str> = text.lines().collect();
        assert!(lines.len() > 10);
        assert!(
            lines
                .iter()
                .all(|l| l.chars().count() == lines[0].chars().count())
        );
    }
}
