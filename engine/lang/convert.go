package lang

import (
	"fmt"

	"github.com/zclconf/go-cty/cty"
	"github.com/zclconf/go-cty/cty/convert"
	"github.com/zclconf/go-cty/cty/function"
)

func toString(v cty.Value) (string, error) {
	sv, err := convert.Convert(v, cty.String)
	if err != nil {
		return "", fmt.Errorf("template result is %s, not a string", v.Type().FriendlyName())
	}
	return sv.AsString(), nil
}

func makeToFunc(want cty.Type) function.Function {
	return function.New(&function.Spec{
		Params: []function.Parameter{{Name: "v", Type: cty.DynamicPseudoType, AllowNull: true}},
		Type:   function.StaticReturnType(want),
		Impl: func(args []cty.Value, _ cty.Type) (cty.Value, error) {
			v, err := convert.Convert(args[0], want)
			if err != nil {
				return cty.NilVal, fmt.Errorf("cannot convert %s to %s", args[0].Type().FriendlyName(), want.FriendlyName())
			}
			return v, nil
		},
	})
}

// makeToCollFunc converts to a collection of a single element type found by unification.
func makeToCollFunc(kind func(cty.Type) cty.Type) function.Function {
	return function.New(&function.Spec{
		Params: []function.Parameter{{Name: "v", Type: cty.DynamicPseudoType}},
		Type: func(args []cty.Value) (cty.Type, error) {
			want := kind(cty.DynamicPseudoType)
			v := args[0]
			if !v.IsKnown() {
				return want, nil
			}
			out, err := convert.Convert(v, want)
			if err != nil {
				return cty.NilType, fmt.Errorf("cannot convert %s: %w", v.Type().FriendlyName(), err)
			}
			return out.Type(), nil
		},
		Impl: func(args []cty.Value, retType cty.Type) (cty.Value, error) {
			return convert.Convert(args[0], retType)
		},
	})
}
