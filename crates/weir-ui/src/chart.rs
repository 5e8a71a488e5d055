//! Charts drawn as SVG on the server with plotters: ROC curves, one or several overlaid.

use plotters::prelude::*;

/// One curve: its name and its points (false positive rate, true positive rate).
#[derive(Debug, Clone, PartialEq)]
pub struct Curve {
    pub name: String,
    pub points: Vec<(f64, f64)>,
}

const PALETTE: [RGBColor; 6] = [
    RGBColor(31, 119, 180),
    RGBColor(255, 127, 14),
    RGBColor(44, 160, 44),
    RGBColor(214, 39, 40),
    RGBColor(148, 103, 189),
    RGBColor(140, 86, 75),
];

/// ROC curves on the unit square, with the chance diagonal and a legend.
pub fn roc_svg(curves: &[Curve]) -> Result<String, String> {
    let mut svg = String::new();
    {
        let root = SVGBackend::with_string(&mut svg, (440, 360)).into_drawing_area();
        let mut chart = ChartBuilder::on(&root)
            .margin(12)
            .x_label_area_size(36)
            .y_label_area_size(44)
            .build_cartesian_2d(0f64..1f64, 0f64..1f64)
            .map_err(|e| e.to_string())?;
        chart
            .configure_mesh()
            .x_desc("false positive rate")
            .y_desc("true positive rate")
            .light_line_style(RGBAColor(128, 128, 128, 0.15))
            .draw()
            .map_err(|e| e.to_string())?;
        chart
            .draw_series(LineSeries::new([(0.0, 0.0), (1.0, 1.0)], RGBAColor(128, 128, 128, 0.6)))
            .map_err(|e| e.to_string())?;
        for (i, curve) in curves.iter().enumerate() {
            let colour = PALETTE[i % PALETTE.len()];
            let mut points = curve.points.clone();
            points.sort_by(|a, b| a.0.total_cmp(&b.0).then(a.1.total_cmp(&b.1)));
            chart
                .draw_series(LineSeries::new(points, colour.stroke_width(2)))
                .map_err(|e| e.to_string())?
                .label(curve.name.clone())
                .legend(move |(x, y)| PathElement::new([(x, y), (x + 16, y)], colour.stroke_width(2)));
        }
        if !curves.is_empty() {
            chart
                .configure_series_labels()
                .position(SeriesLabelPosition::LowerRight)
                .background_style(WHITE.mix(0.8))
                .border_style(RGBAColor(128, 128, 128, 0.6))
                .draw()
                .map_err(|e| e.to_string())?;
        }
        root.present().map_err(|e| e.to_string())?;
    }
    Ok(svg)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn curves_are_drawn_with_their_names_escaped() {
        let curves = [
            Curve { name: "run <a>".into(), points: vec![(0.0, 0.0), (0.2, 0.7), (1.0, 1.0)] },
            Curve { name: "run b".into(), points: vec![(0.0, 0.0), (0.5, 0.5), (1.0, 1.0)] },
        ];
        let svg = roc_svg(&curves).unwrap();
        assert!(svg.starts_with("<svg"), "{}", &svg[..100.min(svg.len())]);
        assert!(svg.contains("false positive rate"));
        assert!(!svg.contains("run <a>"));
        assert!(svg.matches("<polyline").count() >= 3, "{svg}");
    }
}
