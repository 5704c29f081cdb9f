package pipeline

import "context"

// Run is RunFeed over one page, effects.
func (en *Engine) Run(ctx context.Context, effects []Effect) (EngineResult, error) {
	return en.RunFeed(ctx, func(context.Context) ([]Effect, error) {
		page := effects
		effects = nil
		return page, nil
	})
}
